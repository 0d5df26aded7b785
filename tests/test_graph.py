"""grader.grading.graph: the judge runs an exported model itself, and only on operations a CNN is made of."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from grader.grading.graph import Graph, GraphError, accuracy
from grader.worker.exporting import export_model
from grader.worker.wire import pack, unpack

pytestmark = pytest.mark.usefixtures("one_thread")


def exported(model: nn.Module, batch: int = 4) -> Graph:
    frame = pack({"g": export_model(model, batch)})
    size = int.from_bytes(frame[:8], "big")
    return Graph(unpack(frame[8:8 + size], frame[8 + size:])["g"])


def test_the_reference_models_run_here_exactly_and_are_counted():
    from solutions.models import Student, Teacher

    for cls in (Teacher, Student):
        torch.manual_seed(0)
        model = cls().eval()
        graph = exported(model, batch=16)
        x = torch.randn(21, 1, 28, 28)  # not a multiple of the batch: the last one is padded
        with torch.no_grad():
            assert torch.allclose(graph(x), model(x), atol=1e-6)
        assert graph.weights() == sum(p.numel() for p in model.parameters())


class LookUp(nn.Module):
    """A 'model' that answers from a table keyed by a pixel: what a list of the test labels would need."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.randint(0, 10, (256,)))

    def forward(self, x):
        key = (x[:, 0, 14, 14] * 10).long().clamp(0, 255)
        return nn.functional.one_hot(self.table[key], 10).float()


def test_a_model_that_looks_its_answers_up_is_refused():
    with pytest.raises(GraphError, match="does not run"):
        exported(LookUp())


def test_a_graph_that_names_an_unknown_operation_or_value_is_refused():
    good = export_model(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), 2)
    bad = dict(good, nodes=[dict(good["nodes"][0], target="aten.argmax.default"), *good["nodes"][1:]])
    with pytest.raises(GraphError):
        Graph(bad)
    dangling = dict(good, nodes=[dict(good["nodes"][0], args=[{"node": "nowhere"}]), *good["nodes"][1:]])
    with pytest.raises(GraphError):
        Graph(dangling)


def test_accuracy_is_zero_for_logits_that_are_not_finite():
    labels = torch.tensor([1, 2])
    assert accuracy(torch.eye(10)[[1, 2]], labels) == 1.0
    assert accuracy(torch.full((2, 10), float("nan")), labels) == 0.0
