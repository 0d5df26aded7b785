"""The `learnkd` command as a learner uses it: list, hint, progress, reset, check (and --json for Gradescope).

Every test runs from a temporary project (a copy of exercises/), so progress files, backups and resets
never touch the repository.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from grader.cli import cli
from grader.course.stubs import EXERCISES, SOLUTIONS, exercise_file
from grader.course.topics import get_topic, topic_names, topics

LEARNKD = Path(sys.executable).with_name("learnkd")


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A learner's project: untouched exercises/ in a temporary folder that is the working folder."""
    shutil.copytree(EXERCISES, tmp_path / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def learnkd(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def progress_file(project: Path) -> Path:
    return project / ".learnkd" / "progress.json"


def write_progress(project: Path, topics_: dict, hints: dict | None = None) -> None:
    progress_file(project).parent.mkdir(parents=True, exist_ok=True)
    progress_file(project).write_text(json.dumps({"version": 1, "topics": topics_, "hints": hints or {}}))


# ---------------------------------------------------------------------------------------------------
# list, hint, progress, reset


def test_list_shows_the_topics_in_course_order(project):
    result = learnkd("list")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    for number, topic in enumerate(topics(), start=1):
        assert lines[number - 1].startswith(f"{number}. {topic.name}")
        assert f"exercises/{topic.file}" in lines[number - 1] and topic.title in lines[number - 1]
    assert "all" in lines[len(topics())]


def test_hint_shows_one_more_each_time_and_all_with_all(project):
    hints = get_topic("loss").hints
    assert len(hints) >= 3
    first = learnkd("hint", "loss")
    assert first.exit_code == 0
    assert f"hint 1/{len(hints)} (loss): {hints[0]}" in first.output
    assert "hint 2/" not in first.output and "learnkd hint loss` again" in first.output
    second = learnkd("hint", "loss").output
    assert f"hint 1/{len(hints)}" in second and f"hint 2/{len(hints)} (loss): {hints[1]}" in second
    assert "hint 3/" not in second
    assert json.loads(progress_file(project).read_text())["hints"] == {"loss": 2}
    every = learnkd("hint", "loss", "--all").output
    assert all(f"hint {n}/{len(hints)}" in every for n in range(1, len(hints) + 1))
    assert "that was the last hint" in every
    # past the last one, it stays at the last one
    assert f"hint {len(hints)}/{len(hints)}" in learnkd("hint", "loss").output
    assert json.loads(progress_file(project).read_text())["hints"] == {"loss": len(hints)}


def test_hint_counts_each_topic_separately(project):
    learnkd("hint", "loss")
    result = learnkd("hint", "models")
    assert "hint 1/" in result.output and "hint 2/" not in result.output


def test_hint_of_an_unknown_topic_is_a_usage_error(project):
    result = learnkd("hint", "optimizers")
    assert result.exit_code == 2 and "optimizers" in result.output


def test_progress_shows_status_counts_bar_and_next(project):
    write_progress(project, {"models": {"status": "done", "passed": 4, "total": 4},
                             "loss": {"status": "failing", "passed": 5, "total": 7}})
    result = learnkd("progress")
    assert result.exit_code == 0, result.output
    lines = {line.split()[0]: line for line in result.output.splitlines() if line.split()}
    assert "done" in lines["models"] and "4/4 checks" in lines["models"] and "✓" in lines["models"]
    assert "failing" in lines["loss"] and "5/7 checks" in lines["loss"] and "✗" in lines["loss"]
    assert "not started" in lines["train"] and "not started" in lines["evaluate"]
    bar = lines["progress"]
    assert re.search(r"\[#+\.+\] 1/4", bar), bar
    assert "next: learnkd check loss" in result.output


def test_progress_when_everything_is_done_points_to_check_all(project):
    write_progress(project, {n: {"status": "done", "passed": 1, "total": 1} for n in topic_names()})
    result = learnkd("progress")
    assert "[################] 4/4" in result.output and "learnkd check all" in result.output


def test_a_corrupt_progress_file_warns_and_is_rebuilt(project):
    progress_file(project).parent.mkdir()
    progress_file(project).write_text('{"topics": {"models": ')  # cut short by a crash
    result = learnkd("progress")
    assert result.exit_code == 0
    assert "warning" in result.stderr and str(progress_file(project)) in result.stderr
    assert "0/4" in result.stdout
    kept = progress_file(project).with_name("progress.json.corrupt")
    assert kept.read_text() == '{"topics": {"models": '  # set aside, not lost
    assert learnkd("hint", "loss").exit_code == 0
    assert json.loads(progress_file(project).read_text())["hints"] == {"loss": 1}  # a valid file again


def test_reset_backs_up_the_learners_file_then_restores_the_stub(project):
    mine = "# my attempt\ndef soft_targets(logits, T=1.0):\n    return logits / T\n"
    (project / "exercises" / "loss.py").write_text(mine)
    write_progress(project, {"loss": {"status": "failing", "passed": 1, "total": 7},
                             "models": {"status": "done", "passed": 4, "total": 4}})
    result = learnkd("reset", "loss")
    assert result.exit_code == 0, result.output
    stub = exercise_file((SOLUTIONS / "loss.py").read_text(), "loss", "loss.py")
    assert (project / "exercises" / "loss.py").read_text() == stub
    backups = list((project / ".learnkd" / "backups").glob("loss-*.py"))
    assert len(backups) == 1 and backups[0].read_text() == mine
    assert str(backups[0]) in result.output
    saved = json.loads(progress_file(project).read_text())["topics"]
    assert "loss" not in saved and saved["models"]["status"] == "done"
    # a second reset at once keeps both backups
    (project / "exercises" / "loss.py").write_text(mine + "# second try\n")
    learnkd("reset", "loss")
    texts = sorted(p.read_text() for p in (project / ".learnkd" / "backups").glob("loss-*.py"))
    assert texts == sorted([mine, mine + "# second try\n"])


# ---------------------------------------------------------------------------------------------------
# check: usage errors (exit 2, one paragraph, no grading)


def test_path_to_a_missing_folder_exits_2(project):
    result = learnkd("check", "loss", "--path", "no/such/folder")
    assert result.exit_code == 2
    assert "no such folder" in result.output and "Traceback" not in result.output


def test_path_and_solutions_together_exit_2(project):
    result = learnkd("check", "loss", "--path", "exercises", "--solutions")
    assert result.exit_code == 2 and "--path and --solutions" in result.output


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_device_cuda_without_a_gpu_exits_2_with_a_clear_message(project):
    result = learnkd("check", "loss", "--solutions", "--device", "cuda")
    assert result.exit_code == 2
    assert "--device cuda" in result.output and "no CUDA device" in result.output
    assert "Leave --device out" in result.output and "Traceback" not in result.output


def test_an_unknown_topic_exits_2(project):
    assert learnkd("check", "distillation").exit_code == 2


def test_check_all_keeps_its_teacher_in_the_user_cache_unless_told_no_cache(project, monkeypatch, mnist_dir):
    """The request `check all` hands the grader (its run: tests/test_check_all.py and tests/test_progress.py)."""
    asked = []

    def run_grading(request, **_):
        asked.append(request.cache_dir)
        raise RuntimeError("stop here")

    monkeypatch.setattr("grader.grading.run_grading", run_grading)
    monkeypatch.setenv("XDG_CACHE_HOME", str(project / "cache"))
    for flags in ([], ["--no-cache"]):
        result = CliRunner().invoke(cli, ["check", "all", "--solutions", "--data-dir", str(mnist_dir), *flags])
        assert str(result.exception) == "stop here", result.output
    assert asked == [str(project / "cache" / "learnkd" / "teachers"), None]


# ---------------------------------------------------------------------------------------------------
# check: grading (each runs a judge and a worker, forked from this process's warm ones: tests/conftest.py's
# shared_judges; a judge of its own: test_the_real_command_in_a_process_of_its_own)


def check(shared_judges, *args: str):
    return CliRunner().invoke(cli, ["check", *args], obj=shared_judges(), catch_exceptions=False)


GRADESCOPE_VISIBILITY = {"hidden", "after_due_date", "after_published", "visible"}


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def assert_gradescope_results(results: dict, topic: str) -> None:
    """Field by field, Gradescope's results.json ("Autograder Specifications",
    https://gradescope-autograders.readthedocs.io/en/latest/specs/, section "Output format"; the same text
    is docs/specs.md of github.com/gradescope/autograder_samples):
      top level: "score" (a number; "overrides total of tests if specified", so it must equal their sum),
      "max_score", "execution_time" (seconds), "output" (text for the whole submission), "visibility" and
      "stdout_visibility" (one of hidden, after_due_date, after_published, visible), "tests": a list;
      each test: "score", "max_score", "status" ("passed" or "failed", section "Test case status"),
      "name", "number" (a string such as "1.1"), "output" (a string), "tags" (a list of strings),
      "visibility" (as above)."""
    assert set(results) >= {"score", "max_score", "execution_time", "output", "tests"}
    tests = results["tests"]
    assert isinstance(tests, list) and tests
    assert is_number(results["score"]) and is_number(results["max_score"])
    assert results["score"] == pytest.approx(sum(t["score"] for t in tests))
    assert results["max_score"] == pytest.approx(sum(t["max_score"] for t in tests))
    assert isinstance(results["execution_time"], (int, float)) and results["execution_time"] >= 0
    assert isinstance(results["output"], str) and topic in results["output"]
    assert results.get("visibility", "visible") in GRADESCOPE_VISIBILITY
    assert results.get("stdout_visibility", "hidden") in GRADESCOPE_VISIBILITY
    numbers = set()
    for test in tests:
        assert isinstance(test["name"], str) and test["name"]
        assert isinstance(test["number"], str) and re.fullmatch(r"\d+\.\d+", test["number"])
        numbers.add(test["number"])
        assert is_number(test["score"]) and is_number(test["max_score"])
        assert test["max_score"] > 0 and 0 <= test["score"] <= test["max_score"]
        assert test["status"] in {"passed", "failed"}
        assert (test["status"] == "passed") == (test["score"] == test["max_score"])
        assert isinstance(test["output"], str)
        assert isinstance(test["tags"], list) and all(isinstance(tag, str) for tag in test["tags"])
        assert topic in test["tags"]
        assert test["visibility"] in GRADESCOPE_VISIBILITY
    assert len(numbers) == len(tests)  # each test its own number


def test_check_loss_on_the_solutions_passes_and_writes_gradescope_json(project, shared_judges):
    out = project / "results" / "results.json"
    result = check(shared_judges, "loss", "--solutions", "--json", str(out))
    assert result.exit_code == 0, result.output
    assert re.search(r"^loss\s+✓\s+(\d+)/\1 checks", result.output, re.M), result.output
    assert not (project / ".learnkd").exists()  # grading the reference records no progress
    results = json.loads(out.read_text())
    assert_gradescope_results(results, "loss")
    assert all(t["status"] == "passed" for t in results["tests"])
    assert results["score"] == results["max_score"] > 0  # points per check come from grader/course/points.toml
    loss_number = topic_names().index("loss") + 1
    assert [t["number"] for t in results["tests"]] == [f"{loss_number}.{i}" for i in range(1, len(results["tests"]) + 1)]
    assert all(t["name"].startswith("loss: ") for t in results["tests"])


@pytest.mark.slow
def test_check_on_untouched_exercises_is_not_started_and_fails(project, shared_judges):
    out = project / "results.json"
    result = check(shared_judges, "loss", "--json", str(out))
    assert result.exit_code == 1, result.output
    assert re.search(r"^loss\s+·\s+not started", result.output, re.M), result.output
    assert "learnkd hint loss" in result.output
    assert "[................] 0/4" in result.output
    assert json.loads(progress_file(project).read_text())["topics"]["loss"]["status"] == "not started"
    results = json.loads(out.read_text())
    assert_gradescope_results(results, "loss")
    assert results["score"] == 0.0 and all(t["status"] == "failed" for t in results["tests"])
    assert all("not started" in t["output"] for t in results["tests"])  # the learner sees why


@pytest.mark.slow
def test_check_without_a_topic_grades_the_next_one_not_done(project, shared_judges):
    write_progress(project, {"models": {"status": "done", "passed": 4, "total": 4}})
    result = check(shared_judges)
    assert "grading the next topic not done: loss" in result.output
    assert re.search(r"^loss\s+·\s+not started", result.output, re.M), result.output
    assert result.exit_code == 1


def broken_submission(project: Path) -> tuple[Path, int]:
    """The reference with an unclosed parenthesis in loss.py; returns the folder and that line."""
    folder = project / "submission"
    shutil.copytree(SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    lines = (folder / "loss.py").read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if "hard = F.cross_entropy" in line)
    lines[at] = lines[at].replace("F.cross_entropy(", "F.cross_entropy((")
    (folder / "loss.py").write_text("\n".join(lines) + "\n")
    return folder, at + 1


@pytest.mark.slow
def test_a_syntax_error_is_one_message_with_file_and_line_and_other_topics_still_grade(project, shared_judges):
    folder, line = broken_submission(project)
    result = check(shared_judges, "loss", "--path", str(folder))
    assert result.exit_code == 1, result.output
    found = re.findall(r"submission/loss\.py:(\d+): SyntaxError", result.output)
    assert len(found) == 1, result.output  # said once, however many checks it fails
    assert line <= int(found[0]) <= line + 2  # Python reports the unclosed bracket where it gives up
    assert "Traceback" not in result.output
    # evaluate.py does not depend on loss.py: it is graded as usual
    result = check(shared_judges, "evaluate", "--path", str(folder))
    assert result.exit_code == 0, result.output
    assert re.search(r"^evaluate\s+✓\s+(\d+)/\1 checks", result.output, re.M), result.output
    assert "SyntaxError" not in result.output


@pytest.mark.slow
def test_the_real_command_in_a_process_of_its_own(tmp_path):
    proc = subprocess.run([str(LEARNKD), "check", "loss", "--solutions"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert re.search(r"^loss\s+✓\s+(\d+)/\1 checks", proc.stdout, re.M), proc.stdout
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------------
# how results are printed (no grading: made-up results)


def printed(*topics_, verbose: bool = False) -> str:
    from grader.cli import Explained, print_topic

    import click

    @click.command()
    def show():
        explained = Explained()
        for topic in topics_:
            print_topic(topic, verbose, explained)
    return CliRunner().invoke(show, []).output


def result(topic: str, name: str, status: str = "failed", message: str = "", output: str = "",
           frames: list[str] | None = None):
    from grader.grading.results import CheckResult

    return CheckResult(id=f"{topic}::{name}", topic=topic, name=name, status=status, message=message, output=output,
                       frames=frames or [])


def test_the_end_to_end_label_is_followed_by_a_space():
    from grader.grading.results import TopicResult

    out = printed(TopicResult("all", [result("all", "trains", "passed")]), TopicResult("loss", [result(
        "loss", "x", "passed")]))
    assert re.search(r"^end to end ✓  1/1 checks$", out, re.M), out
    assert re.search(r"^loss\s+✓  1/1 checks$", out, re.M), out
    first, second = out.splitlines()
    assert first.index("✓") == second.index("✓")  # one column for every label


def test_a_checks_report_is_printed_under_its_own_line_not_under_another_checks():
    from grader.grading.results import TopicResult

    topic = TopicResult("train", [
        result("train", "steps the optimizer once per batch", message="train_model never calls optimizer.step()."),
        result("train", "trains a small CNN past a floor", "passed", output="    a small CNN: 86.6% on 500 others")])
    lines = printed(topic).splitlines()
    info = next(i for i, line in enumerate(lines) if "86.6%" in line)
    assert lines[info - 1] == "  ✓ trains a small CNN past a floor", lines
    assert not lines[info - 1].startswith("  ✗")


def test_a_long_explanation_is_said_once_then_referred_to():
    from grader.grading.results import TopicResult

    says = ("alpha weighs the wrong term: alpha multiplies the soft (KL) term and (1 - alpha) the hard "
            "cross-entropy term, not the other way round.")
    topic = TopicResult("loss", [
        result("loss", "matches the reference", message=f"distillation_loss with T=1 gave 2.673, expected 6.97. {says}",
               frames=["exercises/loss.py:20 in distillation_loss: return alpha * hard + (1 - alpha) * soft"]),
        result("loss", "the gradient matches", message=f"the gradient of distillation_loss with T=1 is wrong. {says}"),
        result("loss", "alpha=0 is the cross-entropy", message=f"distillation_loss with alpha=0 gave 4.7. {says}")])
    out = printed(topic)
    assert out.count(says) == 1, out
    assert out.count("Same cause as above: alpha weighs the wrong term.") == 2, out
    assert "the gradient of distillation_loss with T=1 is wrong. Same cause as above" in out
    assert "at exercises/loss.py:20 in distillation_loss: return alpha * hard" in out  # the line under its message


def test_the_same_message_for_several_checks_is_printed_once_with_their_count():
    from grader.grading.results import TopicResult

    message = "exercises/loss.py:3: SyntaxError: invalid syntax"
    topic = TopicResult("loss", [result("loss", f"check {i}", message=message) for i in range(3)])
    out = printed(topic)
    assert out.count(message) == 1 and "(3 checks)" in out and "Same cause" not in out
