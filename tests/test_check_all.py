"""`learnkd check all --solutions` on all of MNIST, as the README runs it, and GitHub Classroom's `all` step taking
the teacher it trained from the user cache. The two share that teacher, so they are one file (one worker)."""

from __future__ import annotations

import os
import shutil

import pytest

from grader.course.stubs import SOLUTIONS
from grader.course.topics import ALL, topic_names
from grader.grading import run_grading
from grader.grading.request import GradingRequest
from grader.grading.results import by_topic
from test_github_classroom import all_step, run_step


@pytest.fixture(scope="module")
def reference_check_all(tmp_path_factory, mnist_dir):
    """`learnkd check all --solutions` as the CLI runs it, with a teacher cache of its own: (the grading, the cache
    folder holding the teacher it trained). Once for this file (minutes: trainings on all of MNIST)."""
    cache = tmp_path_factory.mktemp("teacher-cache")
    request = GradingRequest(path=str(SOLUTIONS), topics=[ALL], data_dir=str(mnist_dir), cache_dir=str(cache))
    return run_grading(request, quiet=True), cache


@pytest.mark.slow
def test_check_all_on_the_reference_passes_and_keeps_its_teacher(reference_check_all):
    """`learnkd check all --solutions` as the CLI runs it passes every check and keeps the teacher it trained, which
    the next test takes from the cache."""
    grading, cache = reference_check_all
    assert grading.crash is None, grading.crash
    results = by_topic(grading.results, [*topic_names(), ALL])
    assert all(c.status == "passed" for r in results for c in r.checks), [
        (c.name, c.message) for r in results for c in r.failed]
    [end] = [r for r in results if r.name == ALL]
    assert len(end.checks) == 3
    table = "\n".join(c.output for c in end.checks)
    assert "teacher" in table and "cached" not in table, table
    assert len(list(cache.glob("teacher-*.pt"))) == 1


@pytest.mark.slow
def test_check_all_as_github_classroom_runs_it_takes_the_teacher_from_the_cache(reference_check_all, tmp_path,
                                                                                 mnist_dir):
    """The workflow's `all` step (`learnkd github-classroom`) on a student's repository holding the reference, with
    the teacher of the run above in the user cache: it passes (the command grader's points) and trains no teacher.
    (Here rather than in tests/test_github_classroom.py: a file's tests share one worker, and so that teacher.)"""
    command = all_step(tmp_path / "template")
    repo, home = tmp_path / "repo", tmp_path / "home"
    shutil.copytree(SOLUTIONS, repo / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(reference_check_all[1], home / ".cache" / "learnkd" / "teachers")
    env = dict(os.environ, LEARNKD_DATA=str(mnist_dir), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    proc = run_step(command, repo, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "✓" in proc.stdout
    teacher_row = next(line for line in proc.stdout.splitlines() if line.strip().startswith("teacher"))
    assert teacher_row.rstrip().endswith("cached"), proc.stdout
