"""`learnkd check all` on all of MNIST, as GitHub Classroom's `all` step runs it on a student's repository holding the
reference (the README's `learnkd check all --solutions` grades the same files the same way). Minutes: it trains
the three models on all of MNIST, the only test that does. (The step taking a cached teacher:
tests/test_progress.py, on a subset.)"""

from __future__ import annotations

import os
import shutil

import pytest

from grader.course.stubs import SOLUTIONS
from test_github_classroom import all_step, run_step


@pytest.mark.slow
def test_check_all_on_the_reference_passes_every_check_and_keeps_its_teacher(tmp_path, mnist_dir):
    """The workflow's `all` step on a student's repository holding the reference, with an empty user cache: it
    passes (the command grader gives the points on exit 0), trains the teacher and keeps it in the user cache."""
    command = all_step(tmp_path / "template")
    repo, home = tmp_path / "repo", tmp_path / "home"
    shutil.copytree(SOLUTIONS, repo / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, LEARNKD_DATA=str(mnist_dir), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    proc = run_step(command, repo, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "✓" in proc.stdout and "✗" not in proc.stdout, proc.stdout
    teacher_row = next(line for line in proc.stdout.splitlines() if line.strip().startswith("teacher"))
    assert not teacher_row.rstrip().endswith("cached"), proc.stdout
    assert len(list((home / ".cache" / "learnkd" / "teachers").glob("teacher-*.pt"))) == 1
