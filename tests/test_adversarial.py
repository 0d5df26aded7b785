"""Adversarial submissions (tests/adversarial/*.py) that try to pass the loss checks without doing the work.

Each file replaces loss.py in a copy of the reference. Its docstring's first line says the trick; the
marker lines say what the grader must answer:

    says: words that a failed check's message (or the crash note) must contain
    crash: yes              the grading process must be reported as stopped early
    passes: allowed         some checks may pass on their merits (wrong values that happen to fit)

Otherwise no check may pass: each trick, had it worked, would have passed them all. They are graded as
`learnkd grade` grades a class, two at a time, with a short wall-clock limit for the one that hangs.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from grader.classroom import Options, grade_batch
from grader.results import by_topic
from grader.stubs import SOLUTIONS

ADVERSARIAL = Path(__file__).resolve().parent / "adversarial"
ENTRIES = sorted(ADVERSARIAL.glob("*.py"))
# Wall-clock limit per submission here: the honest ones take a few seconds; the endless loop is stopped at it.
TIMEOUT_S = 25


def marker(path: Path, name: str) -> str | None:
    found = re.search(rf"^{name}:\s*(.+?)\s*$", path.read_text(), re.M)
    return found and found.group(1)


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    root = tmp_path_factory.mktemp("adversarial")
    folders = []
    for entry in ENTRIES:
        folder = root / "submissions" / entry.stem
        shutil.copytree(SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(entry, folder / "loss.py")
        folders.append(folder)
    batch = grade_batch(folders, root / "out", Options(["loss"], jobs=2, timeout=TIMEOUT_S))
    return {g.handin.name: g for g in batch}


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.stem for e in ENTRIES])
def test_trick_does_not_pass(entry, graded):
    g = graded[entry.stem]
    [loss] = by_topic(g.results, ["loss"])
    assert loss.checks, "no loss check was reported"
    assert loss.status != "done", f"{entry.stem} passed the loss topic"
    if marker(entry, "passes") is None:
        assert loss.passed == 0, f"{entry.stem} passed {[c.name for c in loss.checks if c.passed]}"
    says = marker(entry, "says")
    texts = [c.message for c in loss.failed] + [g.crash or ""]
    assert any(says in text for text in texts), f"no message says {says!r}: {texts[:3]}"
    if marker(entry, "crash"):
        assert g.crash and says in g.crash
    else:
        assert g.crash is None, g.crash


def test_garbage_output_stays_out_of_the_results(graded):
    g = graded["garbage_output"]
    for check in g.results:
        assert "\x1b[" not in check.detail() and '"score": 100' not in check.detail()


def test_hanging_submission_is_stopped_at_the_limit(graded):
    g = graded["endless_loop"]
    assert f"longer than {TIMEOUT_S} s" in g.crash
    assert TIMEOUT_S <= g.seconds < TIMEOUT_S + 15
