"""Judges forked from the batch's fork server (grader.grading.forkserver) grade as judges started on their own; where
the grader itself fails, the judge writes it to its log (grader.grading.judge.Collector)."""

import os
import signal
import socket
from pathlib import Path

import pytest

from bank import entries, submission_with

from grader.grading import channel, judge, judge_environment, run_grading
from grader.grading.forkserver import Judges, given_up
from grader.grading.request import GradingRequest
from grader.grading.results import by_topic

[ENTRY] = [e for e in entries("mistakes") if e.id == "loss/no_t_squared"]


def verdicts(grading) -> dict:
    assert grading.crash is None, grading.crash
    [result] = by_topic(grading.results, ["loss"])
    return {c.name: (c.status, c.message, c.frames, c.mistake) for c in result.checks}


@pytest.mark.slow
def test_a_forked_judge_grades_as_a_judge_of_its_own_and_a_dead_server_is_started_around(tmp_path, mnist_dir,
                                                                                        capfd):
    folder = submission_with(ENTRY, tmp_path / "sub")
    with open(folder / "loss.py", "a") as f:
        f.write('\nimport sys\nprint("printed by the learner", file=sys.stderr)\n')
    request = GradingRequest(path=str(folder), topics=["loss"], data_dir=str(mnist_dir))
    judges = Judges(judge_environment())
    try:
        capfd.readouterr()
        forked = verdicts(run_grading(request, quiet=True, judges=judges))  # as `learnkd grade` runs them
        assert any(status == "failed" for status, *_ in forked.values())
        assert "printed by the learner" not in capfd.readouterr().err, "a quiet run's output goes to its log"
        forks, start = [], judges.start
        judges.start = lambda *args: forks.append(args[4]) or start(*args)
        on_terminal = run_grading(request, judges=judges)  # as `learnkd watch` runs them
        judges.start = start
        assert forks == [2] and judges.started == 2, "the judge was forked, its stderr this process's"
        assert verdicts(on_terminal) == forked
        assert "printed by the learner" in capfd.readouterr().err, "the learner's output reaches the terminal"
        os.kill(judges.proc.pid, signal.SIGKILL)
        judges.proc.wait()
        alone = verdicts(run_grading(request, quiet=True, judges=judges))
        assert judges.started == 2, "the server is dead: a judge of its own, not a third fork"
        assert alone == forked, "a forked judge grades as a judge of its own"
    finally:
        judges.close()


@pytest.mark.slow
def test_a_failing_judge_says_why_in_its_log_and_the_server_ends_with_its_socket(tmp_path):
    judges = Judges(judge_environment())
    read_fd, write_fd = os.pipe()
    log = open(tmp_path / "log.txt", "ab")
    try:
        judge = judges.start(["/nonexistent/request.json"], {"fd": write_fd, "key": "00", "sandbox": "none"},
                             write_fd, log.fileno())
        code = judge.wait(timeout=120)
        assert code == 1 and "nonexistent" in (tmp_path / "log.txt").read_text(), "the judge's error, in its log"
    finally:
        os.close(write_fd)
        os.close(read_fd)
        log.close()
        judges.close()
    assert judges.proc.returncode is not None, "the server ended when its socket closed"


def test_the_server_sees_a_grader_that_stopped_waiting():
    """A grader that gave up on the server closes its end; the server then starts no judge for it (two judges
    writing to one results pipe would spoil it)."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    assert not given_up(theirs)
    ours.close()
    assert given_up(theirs)
    theirs.close()


def judged(folder: Path):
    """pytest on the check modules of ``folder`` with the judge's Collector and its --tb=no (``judge.pytest_args``),
    in this process: its exit code and the Collector. What the judge writes to its log is this process's stdout."""
    assert "--tb=no" in judge.pytest_args(GradingRequest(path=str(folder), topics=["loss"]), "request.json")
    with open(os.devnull, "wb") as null:
        collector = judge.Collector(channel.Writer(null.fileno(), b"k" * 32), str(folder), 5.0)
        code = pytest.main([str(folder), "--tb=no", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder)],
                           plugins=[collector])
    return code, collector


def test_a_check_module_that_cannot_be_collected_leaves_its_traceback_in_the_judges_log(tmp_path, capfd):
    """The judge runs pytest with --tb=no (a failed check's message is its own), so it writes where a check module
    failed to import itself: the end of its log is what a user is shown when the checks could not start
    (grader.grading.crash_reason). An import that fails, and code of the module that raises."""
    (tmp_path / "test_missing.py").write_text("import learnkd_no_such_module\n")
    (tmp_path / "test_raises.py").write_text("def table():\n    raise RuntimeError('no such topic')\n\n\nTABLE = table()\n")
    code, collector = judged(tmp_path)
    assert code == 2 and collector.collect_errors == 2
    out = capfd.readouterr().out
    assert "ModuleNotFoundError" in out and "learnkd_no_such_module" in out and "test_missing.py" in out, out
    assert "RuntimeError: no such topic" in out and "test_raises.py:5" in out and "test_raises.py:2" in out, out


def test_a_check_that_fails_by_a_bug_of_the_grader_leaves_where_in_the_judges_log(tmp_path, capfd):
    """A learner reads a failed check's own words; a check that raised by itself ("a bug in the grader") also leaves
    its traceback in the judge's log, for whoever fixes it, and a check that failed as checks do leaves none."""
    (tmp_path / "test_checks.py").write_text(
        "from grader.grading.checking import CheckFailed\n\n\n"
        "def test_grader_bug():\n    {}['tolerance']\n\n\n"
        "def test_wrong_value():\n    raise CheckFailed('your soft_targets is off by 0.1')\n")
    code, _ = judged(tmp_path)
    assert code == 1
    out = capfd.readouterr().out
    assert "test_checks.py:5: in test_grader_bug" in out and "KeyError: 'tolerance'" in out, out
    assert "test_wrong_value" not in out.split("short test summary")[0], "a check's own failure has no traceback"
