"""Every named mistake has an id that is unique and stable: tests/mistake_ids.txt pins them, so rewording a
mistake's sentence (or renaming it) keeps what class reports and scripts count."""

import re
from dataclasses import replace
from pathlib import Path

from grader.diagnose import mistake_id, named
from grader.diagnose.evaluate import EVALUATE_MISTAKES
from grader.diagnose.loss import LOSS_MISTAKES, SOFT_TARGETS_MISTAKES, pairs
from grader.diagnose.train import MISTAKE_IDS, OTHER_IDS
from grader.grading.results import CheckResult, gradescope, mistake_ids

PINNED = Path(__file__).with_name("mistake_ids.txt")
NAMED = LOSS_MISTAKES + SOFT_TARGETS_MISTAKES + EVALUATE_MISTAKES


def current() -> list[str]:
    return [m.id for m in NAMED] + list(MISTAKE_IDS.values()) + OTHER_IDS


def pinned() -> list[str]:
    return [line.strip() for line in PINNED.read_text().splitlines() if line.strip() and not line.startswith("#")]


def test_ids_are_unique_and_well_formed():
    ids = current()
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]
    assert all(re.fullmatch(r"(loss|evaluate|train|models)(\.[A-Za-z0-9_]+)+", i) for i in ids), ids


def test_the_ids_are_the_pinned_ones():
    missing = sorted(set(pinned()) - set(current()))
    assert not missing, f"ids that existed are gone or renamed (keep them: set Mistake(..., id=OLD)): {missing}"
    new = sorted(set(current()) - set(pinned()))
    assert not new, f"new mistakes: add their ids to {PINNED.name}: {new}"


def test_rewording_a_mistake_keeps_its_id_and_an_explicit_id_wins():
    mistake = LOSS_MISTAKES[0]
    [reworded] = named("loss", [replace(mistake, says="Reworded entirely.", id="")])  # as if written anew
    assert reworded.id == mistake.id == "loss.no_T_squared"
    [kept] = named("loss", [replace(mistake, name="a new name", id="loss.no_T_squared")])
    assert kept.id == "loss.no_T_squared" and mistake_id("loss", "no T**2") == "loss.no_T_squared"


def test_two_mistakes_at_once_carry_both_ids():
    both = next(m for m in pairs(LOSS_MISTAKES) if m.name.startswith("no T**2 + "))
    parts = mistake_ids(both.id)
    assert parts[0] == "loss.no_T_squared" and len(parts) == 2 and parts[1] in current()


def test_results_json_tags_a_failed_check_with_its_mistakes():
    results = [CheckResult(id="test_loss.py::test_x", topic="loss", name="x", status="failed", message="m",
                           mistake="loss.no_T_squared+loss.alpha_swapped"),
               CheckResult(id="test_loss.py::test_y", topic="loss", name="y", status="passed")]
    tests = gradescope(results, 1.0, "")["tests"]
    assert tests[0]["tags"] == ["loss", "loss.no_T_squared", "loss.alpha_swapped"] and tests[1]["tags"] == ["loss"]
