"""Every mistaken submission fails the right check with the right words; every correct variant passes.

Every entry is graded by the judge's checks in this process (tests/in_process.py: the same checks, collector,
channel and worker code, without the processes and the sandbox): a mistake on its topic's checks up to the last
one its `check:` words name (on its whole topic when it must fail no other check), a correct variant on its whole
topic. A few are graded
through the whole grading process too, on their whole topic, and must come out the same.
"""

import pytest

import in_process
from bank import entries, grade, submission_with

from grader.grading.results import by_topic, mistake_ids

MISTAKES = entries("mistakes")
CORRECT = entries("correct")
# The developer's loop (pytest -m "not slow") grades these; the full suite grades every entry.
FAST = {"loss/no_t_squared", "loss/alpha_swapped", "evaluate/forgot_eval_mode", "evaluate/percentage", "loss/seed_lab",
        "evaluate/seed_lab", "train/grads_never_cleared", "models/syntax_error"}
# Graded through the whole grading process too (judge, worker, sandbox): a value mistake, a model mistake, a loop
# that never ends (the worker stops it), and a correct entry.
WHOLE = {"loss/no_t_squared", "train/endless_loop", "models/softmax_output", "loss/seed_lab"}


def banked(bank):
    return [pytest.param(e, id=e.id, marks=() if e.id in FAST else pytest.mark.slow) for e in bank]


def graded_in_process(entry, tmp_path, mnist_dir, up_to: str | None = None):
    grading = in_process.grade(submission_with(entry, tmp_path / "sub"), entry.topic, str(mnist_dir), up_to=up_to)
    [result] = by_topic(grading.results, [entry.topic])
    return result


def test_the_banks_are_not_empty():
    assert len(MISTAKES) >= 10 and len(CORRECT) >= 3
    assert FAST | WHOLE <= {e.id for e in MISTAKES + CORRECT}, "every entry named here is in a bank"


@pytest.mark.parametrize("entry", banked(MISTAKES))
def test_mistake_fails_the_right_check_with_the_right_words(entry, tmp_path, mnist_dir):
    assert entry.check and entry.says, f"{entry.path} needs 'check:' and 'says:' lines in its docstring"
    # the checks up to the last it must fail; every check of its topic when it must fail no other
    result = graded_in_process(entry, tmp_path, mnist_dir, up_to=None if entry.only else entry.check)
    failed = {c.name: c.message for c in result.failed}
    assert failed, f"{entry.id}: every check passed"
    matching = {name: msg for name, msg in failed.items() if entry.check in name}
    assert matching, f"{entry.id}: no failing check named like {entry.check!r}; failed: {list(failed)}"
    assert any(entry.says in msg for msg in matching.values()), (
        f"{entry.id}: the message does not say {entry.says!r}: {matching}")
    if entry.never:
        assert not any(entry.never in msg for msg in matching.values()), (
            f"{entry.id}: the message says {entry.never!r}: {matching}")
    if entry.only:
        assert matching == failed, f"{entry.id}: fails other checks too: {list(set(failed) - set(matching))}"
    if entry.mistake:
        ids = {c.name: c.mistake for c in result.failed if entry.check in c.name}
        assert any(entry.mistake in mistake_ids(m) for m in ids.values()), f"{entry.id}: mistake ids {ids}"


@pytest.mark.parametrize("entry", banked(CORRECT))
def test_correct_variant_passes_every_check(entry, tmp_path, mnist_dir):
    result = graded_in_process(entry, tmp_path, mnist_dir)
    assert not result.failed, {c.name: c.message for c in result.failed}
    assert result.passed == len(result.checks) > 0


@pytest.mark.slow
@pytest.mark.parametrize("entry", [e for e in MISTAKES + CORRECT if e.id in WHOLE], ids=lambda e: e.id)
def test_the_whole_grading_process_gives_the_same_verdicts(entry, tmp_path, mnist_dir):
    folder = submission_with(entry, tmp_path / "sub")
    whole = grade(folder, entry.topic, str(mnist_dir))
    [here] = by_topic(in_process.grade(folder, entry.topic, str(mnist_dir)).results, [entry.topic])

    def verdicts(result):
        return {c.name: (c.status, c.message, c.frames, c.mistake, c.not_started) for c in result.checks}

    assert verdicts(whole) == verdicts(here)
