"""grader.lab.submission: a learner's folder imported as a package of its own, and load errors in words."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest

import solutions.evaluate
import solutions.loss
import solutions.models
import solutions.train
from grader.course.stubs import SOLUTIONS
from grader.lab.submission import NotLoaded, display_path, load_submission

REFERENCE = {"models": solutions.models, "loss": solutions.loss, "train": solutions.train,
             "evaluate": solutions.evaluate}
NAME = "learnkd_submission_under_test"


@pytest.fixture
def folder(tmp_path):
    target = tmp_path / "sub"
    shutil.copytree(SOLUTIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    yield target
    for key in [k for k in sys.modules if k == NAME or k.startswith(NAME + ".")]:
        del sys.modules[key]


def load(folder, reference=REFERENCE):
    return load_submission(folder, reference=reference, name=NAME)


def test_a_complete_folder_loads_as_its_own_package(folder):
    sub = load(folder)
    assert not sub.errors
    assert set(sub.modules) == {"models", "loss", "train", "evaluate"}
    assert Path(sub.loss.__file__) == folder / "loss.py"
    assert sub.loss is not solutions.loss and sub.loss.__name__ == f"{NAME}.loss"
    # train.py's `from .loss import distillation_loss` found the submission's own loss.py
    assert sub.train.distillation_loss is sub.loss.distillation_loss


def test_loading_again_reads_the_files_again(folder):
    load(folder)
    (folder / "evaluate.py").write_text("def evaluate(model, loader):\n    return 0.5\n")
    assert load(folder).evaluate.evaluate(None, []) == 0.5


def test_a_syntax_error_names_file_and_line_and_the_reference_stands_in(folder):
    lines = (folder / "loss.py").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "hard = F.cross_entropy" in line)
    lines[at] = lines[at].replace("F.cross_entropy(", "F.cross_entropy((")  # an unclosed parenthesis
    (folder / "loss.py").write_text("\n".join(lines) + "\n")
    sub = load(folder)
    error = sub.errors["loss"]
    assert error.file.endswith("loss.py") and "SyntaxError" in error.message
    assert error.line is not None and at + 1 <= error.line <= len(lines)
    assert f"loss.py:{error.line}" in str(error)
    with pytest.raises(NotLoaded) as info:
        sub.loss
    assert str(info.value) == str(error)
    # the other files still load; train.py imported the reference loss in place of the broken one
    assert set(sub.modules) == {"models", "train", "evaluate"}
    assert sub.train.distillation_loss is solutions.loss.distillation_loss


def test_an_exception_at_import_names_the_learners_line(folder):
    (folder / "evaluate.py").write_text("import torch\n\n\ndef helper():\n    raise ValueError('oops')\n\n\nhelper()\n")
    sub = load(folder)
    error = sub.errors["evaluate"]
    assert error.line == 5 and error.file.endswith("evaluate.py")  # the deepest frame in the learner's file
    assert "ValueError: oops" in error.message


def test_sys_exit_at_import_is_caught(folder):
    (folder / "models.py").write_text("import sys\nsys.exit(3)\n")
    sub = load(folder)
    assert "SystemExit" in sub.errors["models"].message and sub.errors["models"].line == 2
    assert "loss" in sub.modules


@pytest.mark.parametrize("line", ["from solutions.loss import distillation_loss", "import grader.grading.checking",
                                  "import solutions"])
def test_importing_the_reference_or_the_grader_is_refused(folder, line):
    source = (folder / "loss.py").read_text()
    (folder / "loss.py").write_text(f"{line}\n{source}")
    sub = load(folder)
    error = sub.errors["loss"]
    assert error.line == 1 and "may not import" in error.message and line.split()[1] in error.message


def test_a_relative_import_of_a_sibling_is_allowed(folder):
    assert not load(folder).errors  # train.py does `from .loss import ...`


def test_a_missing_file_is_reported(folder):
    (folder / "evaluate.py").unlink()
    sub = load(folder)
    assert "is missing" in sub.errors["evaluate"].message and sub.errors["evaluate"].line is None
    with pytest.raises(NotLoaded, match="evaluate.py"):
        sub.evaluate


def test_an_unknown_module_is_an_attribute_error(folder):
    with pytest.raises(AttributeError):
        load(folder).helpers


def test_display_path_is_relative_to_the_working_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert display_path(tmp_path / "exercises" / "loss.py") == str(Path("exercises") / "loss.py")
    assert display_path("/elsewhere/loss.py") == "/elsewhere/loss.py"
