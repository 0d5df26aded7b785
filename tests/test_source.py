"""The learner's line behind a value mistake (the worker's task source.find): found by reading the learner's
file with ast, run in this process on the bank's files as the worker runs it."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

from grader.diagnose import loss as loss_diagnosis
from grader.diagnose import train as train_diagnosis
from grader.course.stubs import SOLUTIONS
from grader.worker import tasks
from grader.worker.serve import Worker, load_submission

TESTS = Path(__file__).resolve().parent


@pytest.fixture
def submission_with(tmp_path):
    """A worker that loaded the reference with ``files`` (topic file name -> bank file) in place."""
    packages = []

    def make(**files: Path) -> Worker:
        folder = tmp_path / f"submission{len(packages)}"
        shutil.copytree(SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
        for name, path in files.items():
            shutil.copy(path, folder / f"{name}.py")
        worker = Worker(-1, -1)
        worker.folder = folder.resolve()
        packages.append(f"learnkd_source_test_{len(packages)}")
        load_submission(worker, worker.folder, packages[-1])
        return worker
    yield make
    for package in packages:
        for name in [m for m in sys.modules if m == package or m.startswith(package + ".")]:
            del sys.modules[name]


def find(worker, module: str, name: str, targets: list[str]) -> list[dict]:
    return tasks.run(worker, {"op": "source.find", "module": module, "name": name, "targets": targets})["frames"]


def test_a_loss_mistake_points_at_the_kl_div_line(submission_with):
    worker = submission_with(loss=TESTS / "mistakes" / "loss" / "no_t_squared.py")
    mistake = next(m for m in loss_diagnosis.LOSS_MISTAKES if m.name == "no T**2")
    [frame] = find(worker, "loss", "distillation_loss", loss_diagnosis.where(mistake))
    assert frame["file"] == "loss.py" and frame["name"] == "distillation_loss"
    assert frame["text"].startswith("soft = F.kl_div(")
    lines = (TESTS / "mistakes" / "loss" / "no_t_squared.py").read_text().splitlines()
    assert lines[frame["line"] - 1].strip() == frame["text"]


def test_a_module_level_kldivloss_is_found_outside_the_function(submission_with):
    worker = submission_with(loss=TESTS / "mistakes" / "loss" / "kldivloss_default.py")
    mistake = next(m for m in loss_diagnosis.LOSS_MISTAKES if m.name == "reduction mean")
    [frame] = find(worker, "loss", "distillation_loss", loss_diagnosis.where(mistake))
    assert frame["name"] == "<module>" and "KLDivLoss()" in frame["text"]


def test_a_loop_mistake_points_at_its_call_or_its_loop(submission_with):
    worker = submission_with(train=TESTS / "mistakes" / "train" / "zero_grad_once_per_epoch.py")
    problem = "train_model clears the gradients once per epoch, before the batch loop, so ..."
    [frame] = find(worker, "train", "train_model", train_diagnosis.where(problem))
    assert frame["text"] == "optimizer.zero_grad()" and frame["name"] == "train_model"
    worker = submission_with(train=TESTS / "mistakes" / "train" / "seed_lab.py")
    [frame] = find(worker, "train", "distill", train_diagnosis.where("distill never calls teacher.eval(): ..."))
    assert frame["text"] == "for epoch in range(epochs):" and frame["name"] == "distill"


def test_another_function_of_the_file_is_never_pointed_at(submission_with):
    worker = submission_with(train=TESTS / "mistakes" / "train" / "student_left_in_eval_mode.py")
    problem = "distill ran the student in eval mode for all 6 batches: ..."
    [frame] = find(worker, "train", "distill", train_diagnosis.where(problem))
    assert frame["name"] == "distill" and frame["text"] == "student.eval()"


def test_the_loss_call_is_found_under_the_name_it_was_imported_as(submission_with):
    worker = submission_with(train=TESTS / "correct" / "train" / "other_zero_grads_detached_teacher.py")
    [frame] = find(worker, "train", "distill", ["loss-call"])
    assert frame["text"].startswith("loss = kd_loss(student(images), soft, targets, T, alpha)")


def test_nothing_found_is_no_frame(submission_with):
    worker = submission_with()
    assert find(worker, "loss", "distillation_loss", ["call:no_such_function"]) == []
    assert find(worker, "loss", "no_such_name", ["return"]) == []
    assert find(worker, "nothing", "distillation_loss", ["return"]) == []


def test_every_loss_mistake_and_loop_sentence_has_a_place_to_look():
    assert all(m.name in loss_diagnosis.WHERE for m in loss_diagnosis.LOSS_MISTAKES
               + loss_diagnosis.SOFT_TARGETS_MISTAKES)
    assert train_diagnosis.where("train_model never calls loss.backward(), so ...") == ["for-over:loader", "for"]
