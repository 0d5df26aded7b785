"""The evaluate diagnosis: its data tell the variants apart, and no correct formulation is named a mistake."""

import importlib.util
from pathlib import Path

import pytest
import torch

from grader.diagnose.evaluate import (EVALUATE_MISTAKES, PARTIAL, Lookup, exact_fraction, loader,
                                      recognise_evaluate, watch)
from solutions.evaluate import evaluate as reference

CORRECT = sorted((Path(__file__).parent / "correct" / "evaluate").glob("*.py"))


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors on one thread: on a busy machine two threads mostly wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def load(path: Path):
    spec = importlib.util.spec_from_file_location(f"bank_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_model_gets_exactly_the_planned_examples_right():
    assert reference(Lookup(), loader(PARTIAL)) == exact_fraction(PARTIAL) == 51 / 70


def test_the_hook_sees_training_mode_and_gradient_tracking():
    model = Lookup(dropout=0.5)
    calls = watch(model.dropout)
    reference(model, loader(PARTIAL))
    assert calls == [(False, False)] * len(PARTIAL)
    model.train()
    model(next(iter(loader(PARTIAL)))[0])
    assert calls[-1] == (True, True)


@pytest.mark.parametrize("mistake", EVALUATE_MISTAKES, ids=lambda m: m.name)
def test_each_variant_is_recognised_as_itself(mistake):
    assert recognise_evaluate(mistake.variant, reference) == mistake


@pytest.mark.parametrize("path", CORRECT, ids=lambda p: p.stem)
def test_no_correct_formulation_is_named_a_mistake(path):
    assert recognise_evaluate(load(path).evaluate, reference) is None
