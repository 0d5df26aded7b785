"""The end-to-end run of `learnkd check all` on the judge/worker design, and the teacher cache.

The learner's code trains in the worker (grader.worker.pipeline); the judge runs each returned graph on
the test set itself (grader.grading.end_to_end). The slow tests train on a subset of real MNIST through a
real worker in the sandbox, then call the checks of grader/checks/test_end_to_end.py on the outcome and
read their messages as the grader shows them (judge.explain), without the topic checks in front.
(`learnkd check all` on all of MNIST: tests/test_check_all.py.)
"""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from grader.lab import teacher_cache
from grader.grading import copy_submission, end_to_end, judge, sandbox
from grader.grading.checking import single_thread
from grader.grading.graph import OPERATIONS, Graph, GraphError
from grader.grading.remote import Remote
from grader.grading.worker_process import Settings, WorkerProcess
from grader.lab.pipeline import DISTILLED, HARD, TEACHER
from grader.course.stubs import SOLUTIONS
from grader.worker import exporting
from bank import load_module
from in_process import InProcessWorker

ROOT = Path(__file__).resolve().parent.parent
with warnings.catch_warnings():  # its marks are registered by the checks' conftest, not here
    warnings.simplefilter("ignore", pytest.PytestUnknownMarkWarning)
    CHECKS = load_module(ROOT / "grader" / "checks" / "test_end_to_end.py")
LIMIT = 2048  # training images of the slow tests: every path runs, in seconds
FEW = 512  # training images where only the judge's reading of a failure is tested
pytestmark = pytest.mark.usefixtures("least_timing")  # the latencies are measured, not tested, here

CONSTANT = '''
import torch
from torch import nn


class Teacher(nn.Module):
    """Constant logits: one learnt bias, the same for every image."""

    def __init__(self):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(10))

    def forward(self, x):
        return self.bias.expand(x.shape[0], 10)


Student = Teacher
'''

ARGMAX = '''

_Teacher = Teacher


class Teacher(_Teacher):
    """The reference network, plus an argmax that changes nothing (but is an operation that compares)."""

    def forward(self, x):
        logits = super().forward(x)
        return logits + 0.0 * logits.argmax(dim=1, keepdim=True)
'''

LOOKUP = '''

import torch as _torch

_Teacher = Teacher


class Teacher(_Teacher):
    """The reference network, plus a table looked up by a pixel's value (what a table of answers needs)."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", _torch.zeros(256, 10))

    def forward(self, x):
        logits = super().forward(x)
        key = (x.flatten(1).sum(1) * 10).long().clamp(0, 255)
        return logits + self.table[key]
'''


def submission(tmp_path: Path, models: str | None = None, append: str = "") -> Path:
    """A copy of the reference solutions, with models.py replaced or extended."""
    folder = tmp_path / "submission"
    shutil.copytree(SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    text = models if models is not None else (folder / "models.py").read_text()
    (folder / "models.py").write_text(text + append)
    return folder


def run_end_to_end(folder: Path, tmp_path: Path, mnist_dir: Path, cache_dir=None, limit: int | None = FEW,
                   train_timeout: float = end_to_end.TRAIN_TIMEOUT_S, sandboxed: bool = False):
    """Grade ``folder`` end to end as the judge does (a private copy); the outcome. The learner's code trains in a
    worker in the sandbox when ``sandboxed``, else in this process (tests/in_process.py: the worker's own code,
    every message through the wire), for the tests of what the judge makes of an outcome."""
    copy = tmp_path / f"copy-{len(list(tmp_path.glob('copy-*')))}"
    copy_submission(folder, copy)
    if sandboxed:
        process = WorkerProcess(copy, sandbox=sandbox.kind(), settings=Settings(memory_mb=8192))
        process.start()
    else:
        process = InProcessWorker(copy)
    try:
        return end_to_end.run(Remote(process, 30.0), data_dir=str(mnist_dir), cache_dir=cache_dir, folder=copy,
                              limit=limit, train_timeout=train_timeout)
    finally:
        process.stop()


def messages(outcome: end_to_end.EndToEnd, folder: Path) -> dict[str, str | None]:
    """Each end-to-end check's message as the learner reads it (None: it passed)."""
    found = {}
    for check in (CHECKS.test_teacher_reaches_the_floor, CHECKS.test_distilled_student_reaches_the_floor,
                  CHECKS.test_student_is_much_smaller_than_the_teacher):
        args = (outcome, SimpleNamespace(node=SimpleNamespace())) if "request" in check.__code__.co_varnames[:2] \
            else (outcome,)
        try:
            check(*args)
            found[check.__name__] = None
        except Exception as err:  # as the judge's Collector reports it
            found[check.__name__] = judge.explain(err, str(folder), 30.0)["message"]
    return found


# ---------------------------------------------------------------------------------------------------
# Fast: the graph's allowlist, the cache's key and entries


class WithArgmax(nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(28 * 28, 10)

    def forward(self, x):
        logits = self.linear(x.flatten(1))
        return logits + 0.0 * logits.argmax(dim=1, keepdim=True)


class WithTable(nn.Module):
    """Logits looked up in a table (of, say, the test labels) by a hash of the image."""

    def __init__(self):
        super().__init__()
        self.register_buffer("table", torch.zeros(1000, 10))

    def forward(self, x):
        key = (x.flatten(1).sum(1) * 1000).long().remainder(1000)
        return self.table[key]


@pytest.mark.parametrize("model, operation", [(WithArgmax, "aten.argmax"), (WithTable, "aten.")])
def test_the_judge_refuses_a_graph_that_compares_or_looks_values_up(model, operation):
    graph = exporting.export_model(model(), 4)
    with pytest.raises(GraphError, match=rf"your Teacher uses the operation {operation}.*which the grader does not run"):
        Graph(graph, what="your Teacher")
    refused = [n["target"] for n in graph["nodes"] if n["op"] == "call_function"
               and n["target"].split(".")[1] not in OPERATIONS]
    assert {"argmax", "index"} & {t.split(".")[1] for t in refused}, refused


def test_the_cache_key_covers_every_file_of_the_submission_and_the_settings(tmp_path):
    folder = submission(tmp_path)
    key = teacher_cache.cache_key(folder, seed=0)
    assert teacher_cache.cache_key(folder, seed=0) == key
    assert teacher_cache.cache_key(folder, seed=1) != key
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "models.cpython-311.pyc").write_bytes(b"changes every run")
    assert teacher_cache.cache_key(folder, seed=0) == key, "bytecode does not count"
    (folder / "helpers.py").write_text("SCALE = 1\n")
    with_helper = teacher_cache.cache_key(folder, seed=0)
    assert with_helper != key, "a helper file the models may import counts"
    (folder / "helpers.py").write_text("SCALE = 2\n")
    assert teacher_cache.cache_key(folder, seed=0) != with_helper, "its bytes count"
    (folder / "helpers.py").rename(folder / "other.py")
    renamed = teacher_cache.cache_key(folder, seed=0)
    assert renamed != with_helper and renamed != key, "its name counts"
    (folder / "data").mkdir()
    (folder / "data" / "table.bin").write_bytes(b"\0" * 10)
    assert teacher_cache.cache_key(folder, seed=0) != renamed, "files in subfolders count"


class NotPlain:
    pass


def test_a_cache_entry_is_read_as_plain_data_only_and_checked(tmp_path):
    good = {"version": teacher_cache.ENTRY_VERSION, "state_dict": {"w": torch.ones(2)},
            "graph": {"nodes": [], "inputs": [], "tensors": {"w": torch.ones(2)}, "batch": 1000, "dt": torch.float32},
            "accuracy": 0.99, "losses": [0.3, 0.1], "seconds": 12.5}
    assert teacher_cache.save(tmp_path, "good", good)
    assert teacher_cache.judge_entry(teacher_cache.load(tmp_path, "good")) is not None
    torch.save({**good, "state_dict": {"w": NotPlain()}}, teacher_cache.path_of(tmp_path, "pickled"))
    assert teacher_cache.load(tmp_path, "pickled") is None, "weights_only loading refuses other classes"
    teacher_cache.path_of(tmp_path, "broken").write_bytes(b"not a torch file")
    assert teacher_cache.load(tmp_path, "broken") is None
    for bad in ({**good, "accuracy": 1.5}, {**good, "version": 1}, {**good, "losses": ["x"]},
                {**good, "state_dict": {"w": [1.0]}}, {**good, "seconds": float("nan")}, {**good, "graph": None}):
        assert teacher_cache.judge_entry(bad) is None, bad


# ---------------------------------------------------------------------------------------------------
# Slow: the learner's code trains in the worker, the judge measures


@pytest.mark.slow
def test_the_reference_trains_in_the_worker_and_the_judge_measures_it(tmp_path, mnist_dir):
    folder = submission(tmp_path)
    cache = tmp_path / "cache"
    first = run_end_to_end(folder, tmp_path, mnist_dir, cache_dir=cache, limit=LIMIT, sandboxed=True)
    assert not first.problems, first.problems
    teacher, distilled, hard = (first.reports[n] for n in (TEACHER, DISTILLED, HARD))
    assert teacher.accuracy > 0.9 and distilled.accuracy > 0.8 and hard.accuracy > 0.8  # 2,048 images, 2 epochs
    assert (teacher.parameters, distilled.parameters, hard.parameters) == (409_386, 9_274, 9_274)
    assert teacher.agreement == 1.0 and 0.8 < distilled.agreement < 1.0
    assert not teacher.cached and teacher.train_seconds > 0 and len(teacher.losses) == 2
    assert set(teacher.latency_ms) == {1, 1000}
    assert len(list(cache.glob("teacher-*.pt"))) == 1

    # The runs on the cache: the worker's code in this process (its start in a sandbox is the first run's)
    second = run_end_to_end(folder, tmp_path, mnist_dir, cache_dir=cache, limit=LIMIT)
    assert second.reports[TEACHER].cached, "the same files, settings and data: the cached teacher"
    assert second.reports[TEACHER].accuracy == teacher.accuracy
    assert second.reports[TEACHER].losses == teacher.losses
    assert second.reports[DISTILLED].accuracy == distilled.accuracy, "distilled from the same weights, same seed"

    # An entry whose graph does not give its accuracy is not used: the judge reads the entry as the runs above do
    # (Run.cached_teacher, on one thread), takes it while it holds up, and would train the teacher again after;
    # a training repeats exactly with the same seed (the second run's distillation). (That every file of the
    # submission keys the entry: test_the_cache_key_covers_every_file_of_the_submission...)
    copy = tmp_path / "copy-cache"
    copy_submission(folder, copy)
    worker = InProcessWorker(copy)

    def reads_the_entry() -> bool:
        run = end_to_end.Run(Remote(worker, 30.0), data_dir=str(mnist_dir), device="cpu", seed=0, cache_dir=cache,
                             folder=copy, progress=False, log=lambda text: None, limit=LIMIT, train_timeout=60.0)
        with single_thread():
            return run.cached_teacher()

    try:
        assert reads_the_entry(), "the entry the runs above read"
        [entry_file] = cache.glob("teacher-*.pt")
        entry = torch.load(entry_file, weights_only=True)
        torch.save({**entry, "accuracy": 0.999}, entry_file)
        assert not reads_the_entry(), "an entry that does not hold up is not used"
    finally:
        worker.stop()


@pytest.mark.slow
def test_constant_logits_fail_the_end_to_end_checks(tmp_path, mnist_dir):
    folder = submission(tmp_path, models=CONSTANT)
    outcome = run_end_to_end(folder, tmp_path, mnist_dir)
    assert not outcome.problems, outcome.problems
    found = messages(outcome, folder)
    teacher = found["test_teacher_reaches_the_floor"]
    assert teacher and "your Teacher reached" in teacher and "it needs at least 98.3%" in teacher, teacher
    student = found["test_distilled_student_reaches_the_floor"]
    assert student and "your distilled Student reached" in student, student
    assert "only 1.0x more" in found["test_student_is_much_smaller_than_the_teacher"]
    assert outcome.reports[TEACHER].accuracy < 0.2


@pytest.mark.slow
@pytest.mark.parametrize("extra, operation", [(ARGMAX, "aten.argmax"), (LOOKUP, "aten.")], ids=["argmax", "lookup"])
def test_a_teacher_with_an_operation_outside_the_allowlist_fails_with_its_name(tmp_path, mnist_dir, extra,
                                                                              operation):
    folder = submission(tmp_path, append=extra)
    outcome = run_end_to_end(folder, tmp_path, mnist_dir)
    found = messages(outcome, folder)
    teacher = found["test_teacher_reaches_the_floor"]
    assert teacher and f"your Teacher uses the operation {operation}" in teacher, teacher
    assert "which the grader does not run" in teacher
    assert found["test_student_is_much_smaller_than_the_teacher"] == teacher, "no parameter count without a graph"
    assert DISTILLED in outcome.reports, "the Student is still distilled from the teacher the worker holds"
    assert outcome.reports[DISTILLED].agreement is None


@pytest.mark.slow
def test_a_model_that_cannot_be_exported_fails_with_the_reason(tmp_path, mnist_dir):
    branch = ("\n\n_Teacher = Teacher\n\n\nclass Teacher(_Teacher):\n    def forward(self, x):\n"
              "        logits = super().forward(x)\n"
              "        if logits.sum() > 0:  # a Python branch on a tensor's value\n"
              "            return logits\n        return -logits\n")
    folder = submission(tmp_path, append=branch)
    outcome = run_end_to_end(folder, tmp_path, mnist_dir)
    found = messages(outcome, folder)
    teacher = found["test_teacher_reaches_the_floor"]
    assert teacher and "your Teacher could not be exported as a graph of operations" in teacher, teacher


@pytest.mark.slow
def test_a_teacher_whose_training_raises_fails_every_check_with_its_error(tmp_path, mnist_dir):
    folder = submission(tmp_path)
    train = (folder / "train.py").read_text()
    (folder / "train.py").write_text(train + "\n\ndef train_model(model, batches, epochs, lr):\n"
                                             "    raise ValueError('no training today')\n")
    outcome = run_end_to_end(folder, tmp_path, mnist_dir)
    found = messages(outcome, folder)
    assert "your code raised ValueError: no training today" in found["test_teacher_reaches_the_floor"]
    assert "could not be trained" in found["test_distilled_student_reaches_the_floor"]


@pytest.mark.slow
def test_a_training_that_never_ends_is_stopped_at_its_request_limit(tmp_path, mnist_dir):
    folder = submission(tmp_path)
    train = (folder / "train.py").read_text()
    (folder / "train.py").write_text(train + "\n\ndef train_model(model, batches, epochs, lr):\n"
                                             "    while True:\n        pass\n")
    outcome = run_end_to_end(folder, tmp_path, mnist_dir, train_timeout=2)
    found = messages(outcome, folder)
    assert "training your Teacher did not finish within 2 s" in found["test_teacher_reaches_the_floor"]
    assert "could not be trained" in found["test_distilled_student_reaches_the_floor"]
