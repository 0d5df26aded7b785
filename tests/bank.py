"""The banks of submissions the grader must judge right: mistaken ones and correct-but-different ones.

tests/mistakes/<topic>/<name>.py and tests/correct/<topic>/<name>.py are each a whole replacement for
exercises/<topic file>, written as a learner would write it. A mistake's docstring names the check it
must fail and words its message must contain, on lines of their own:

    check: is averaged over the batch
    says: reduction='batchmean'

and, optionally, that it fails no other check (every failing check's name holds the ``check:`` words),
and words that check's message must not contain:

    only: yes
    never says: wrong way round
"""

from __future__ import annotations

import importlib.util
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from grader.grading import run_grading
from grader.grading.request import GradingRequest
from grader.grading.results import TopicResult, by_topic
from grader.course.stubs import SOLUTIONS
from grader.course.topics import get_topic

TESTS = Path(__file__).resolve().parent


def load_module(path: Path):
    """A bank file (or any .py file) imported on its own, under the name bank_<stem>."""
    spec = importlib.util.spec_from_file_location(f"bank_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Entry:
    topic: str
    path: Path
    check: str | None = None  # substring of the name of a check it must fail
    says: str | None = None  # substring of that check's message
    only: bool = False  # it must fail no other check
    never: str | None = None  # words the failing check's message must not hold
    mistake: str | None = None  # the id of the named mistake that check must carry ("loss.no_T_squared")

    @property
    def id(self) -> str:
        return f"{self.topic}/{self.path.stem}"


def entries(kind: str) -> list[Entry]:
    found = []
    for path in sorted((TESTS / kind).glob("*/*.py")):
        text = path.read_text()
        check = re.search(r"^\s*check:\s*(.+?)\s*$", text, re.M)
        says = re.search(r"^\s*says:\s*(.+?)\s*$", text, re.M)
        only = re.search(r"^\s*only:\s*yes\s*$", text, re.M)
        never = re.search(r"^\s*never says:\s*(.+?)\s*$", text, re.M)
        mistake = re.search(r"^\s*mistake:\s*(\S+)\s*$", text, re.M)
        found.append(Entry(path.parent.name, path, check and check.group(1), says and says.group(1), bool(only),
                           never and never.group(1), mistake and mistake.group(1)))
    return found


def submission_with(entry: Entry, folder: Path) -> Path:
    """A copy of the reference with the entry's file in place of its topic's file."""
    shutil.copytree(SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(entry.path, folder / get_topic(entry.topic).file)
    return folder


def grade(folder: Path, topic: str, data_dir: str | None = None) -> TopicResult:
    grading = run_grading(GradingRequest(path=str(folder), topics=[topic], data_dir=data_dir))
    assert grading.crash is None, grading.crash
    [result] = by_topic(grading.results, [topic])
    return result
