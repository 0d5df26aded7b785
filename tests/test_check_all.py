"""`learnkd check all --solutions` on all of MNIST, on a terminal, as the README's first command runs it. Minutes: it
trains the three models on all of MNIST, the only test that does. It passes every check, shows each phase with bars
and estimates, and keeps the teacher in the user cache. (Off a terminal, and GitHub Classroom's `all` step taking
that cached teacher: tests/test_progress.py, on a subset of MNIST.)"""

from __future__ import annotations

import re

import pytest

from test_progress import BAR, COMMAND, ESTIMATE, environment, on_terminal

TEACHER_ROW = re.compile(r"^\s*teacher\s+\d+\.\d\d%")  # the comparison table's row, not a bar ("teacher epoch 1/2")


@pytest.mark.slow
def test_check_all_on_the_reference_passes_every_check_shows_each_phase_and_keeps_its_teacher(tmp_path, mnist_dir):
    home = tmp_path / "home"
    env = dict(environment(mnist_dir), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    out, code = on_terminal(COMMAND, env)
    assert code == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    lines = out.replace("\r", "\n")
    assert "✓" in lines and "✗" not in lines, "\n".join(line for line in lines.splitlines() if "✗" in line)
    for phase in ("grading all: every topic's checks", "starting the grader", "checking models (1/5)",
                  "checking loss (2/5)", "checking train (3/5)", "checking evaluate (4/5)", "end to end (5/5)",
                  "(1/3) training your Teacher", "(1/3) your Teacher: trained in", "(2/3) distilling your Student",
                  "(3/3) training the same Student", "timing the models", "end to end: done in"):
        assert phase in lines, f"{phase!r} was not shown"
    checks_bar = [line for line in lines.splitlines() if "checks |" in line and BAR.search(line)]
    assert checks_bar and any(ESTIMATE.search(line) for line in checks_bar), "no bar over the topic checks"
    for model in ("teacher", "distil", "hard labels"):
        bars = [line for line in lines.splitlines() if line.strip().startswith(f"{model} epoch") and BAR.search(line)]
        assert bars, f"no training bar for {model}"
        assert any(ESTIMATE.search(line) and "batch" in line for line in bars), f"no estimate for {model}"
        assert any(f"{model} epoch 2/2" in line for line in bars), "one bar over every epoch, which it names"
    assert "1 image" in out and "agrees: the share of the 10,000 test images" in " ".join(out.split())
    assert "learnkd experiment" in " ".join(out.split())  # the reading wraps at the terminal's width
    [teacher_row] = [line for line in lines.splitlines() if TEACHER_ROW.match(line)]
    assert not teacher_row.rstrip().endswith("cached"), teacher_row
    assert len(list((home / ".cache" / "learnkd" / "teachers").glob("teacher-*.pt"))) == 1
