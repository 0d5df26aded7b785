"""`learnkd github-classroom`: the workflow parses as GitHub expects it, its points come from points.toml, and
the commands it runs on a student's repository run here (the install steps, which need the network and sudo,
excepted)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from grader.cli import cli
from grader.classroom import github
from grader.course.topics import ALL, topic_names

ROOT = Path(__file__).resolve().parent.parent
LEARNKD = Path(sys.executable).with_name("learnkd")
COMMAND_GRADER = "classroom-resources/autograding-command-grader@v1"
REPORTER = "classroom-resources/autograding-grading-reporter@v1"


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("template")
    result = CliRunner().invoke(cli, ["github-classroom", "--out", str(out)])
    assert result.exit_code == 0, result.output
    path = out / ".github" / "workflows" / "classroom.yml"
    return path, yaml.safe_load(path.read_text())


def graders(workflow: dict) -> list[dict]:
    return [s for s in workflow["jobs"]["run-autograding-tests"]["steps"] if s.get("uses") == COMMAND_GRADER]


def test_the_workflow_has_the_structure_github_classroom_expects(written):
    _, workflow = written
    assert workflow["name"] and "push" in workflow["on"]
    job = workflow["jobs"]["run-autograding-tests"]
    assert job["runs-on"] == "ubuntu-latest" and workflow["permissions"]["checks"] == "write"
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    assert all(("uses" in s) != ("run" in s) and s.get("name") for s in steps), "each step uses an action or runs"
    topics = [*topic_names(), ALL]
    assert [s["with"]["test-name"] for s in graders(workflow)] == topics, "one grading step per topic, in order"
    for step in graders(workflow):
        topic = step["with"]["test-name"]
        assert step["with"]["command"] == f"learnkd check {topic}"
        assert isinstance(step["with"]["timeout"], int) and 0 < step["with"]["timeout"] <= 360  # minutes
        assert isinstance(step["with"]["max-score"], (int, float)) and step["with"]["max-score"] > 0
    [reporter] = [s for s in steps if s.get("uses") == REPORTER]
    assert steps[-1] is reporter, "the reporter runs last"
    ids = [s["id"] for s in graders(workflow)]
    assert reporter["with"]["runners"].split(",") == ids
    for step_id in ids:  # the reporter (its src/main.js) reads each runner's result from <RUNNER.toUpperCase()>_RESULTS
        assert reporter["env"][f"{step_id.upper()}_RESULTS"] == \
            "${{steps.%s.outputs.result}}" % step_id


def test_each_topic_is_worth_the_points_of_its_checks(written, tmp_path, monkeypatch):
    _, workflow = written
    scores = {s["with"]["test-name"]: s["with"]["max-score"] for s in graders(workflow)}
    table = tmp_path / "points.toml"
    table.write_text("default = 2.0\n[topics]\nall = 1.0\n")
    monkeypatch.setenv("LEARNKD_POINTS", str(table))
    changed = github.topic_points()
    # points.toml gives each check 1 point but the end-to-end ones 5: twice the first, a fifth of the second
    assert all(changed[t] == 2 * scores[t] for t in topic_names())
    assert changed[ALL] * 5 == scores[ALL] and changed[ALL] >= 3, "the end-to-end checks: 5 points each"


@pytest.mark.slow
def test_it_will_not_replace_a_workflow_unless_forced_and_keeps_the_old_one(tmp_path):
    runner = CliRunner()
    assert runner.invoke(cli, ["github-classroom", "--out", str(tmp_path)]).exit_code == 0
    path = tmp_path / ".github" / "workflows" / "classroom.yml"
    path.write_text("# the instructor's own edits\n")
    refused = runner.invoke(cli, ["github-classroom", "--out", str(tmp_path)])
    assert refused.exit_code == 2 and "--force" in refused.output and "Traceback" not in refused.output
    assert path.read_text() == "# the instructor's own edits\n"
    assert runner.invoke(cli, ["github-classroom", "--out", str(tmp_path), "--force"]).exit_code == 0
    assert (path.with_name("classroom.yml.bak")).read_text() == "# the instructor's own edits\n"
    assert yaml.safe_load(path.read_text())["jobs"]


@pytest.fixture
def student_repository(tmp_path, mnist_dir):
    """A student's repository as the template makes it, with the reference in exercises/."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "solutions", repo / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(os.environ, LEARNKD_DATA=str(mnist_dir), HOME=str(tmp_path / "home"))
    return repo, env


def run_step(command: str, repo: Path, env: dict) -> subprocess.CompletedProcess:
    binary = str(LEARNKD.parent)
    return subprocess.run(["bash", "-c", command], cwd=repo, env=dict(env, PATH=f"{binary}:{env['PATH']}"),
                          capture_output=True, text=True, timeout=900)


def test_the_mnist_step_runs_here(written, student_repository):
    _, workflow = written
    [step] = [s for s in workflow["jobs"]["run-autograding-tests"]["steps"] if "MNIST" in s["name"] and "run" in s]
    proc = run_step(step["run"], *student_repository)
    assert proc.returncode == 0, proc.stderr


def test_a_grading_command_runs_here_on_a_student_repository(written, student_repository):
    """The `loss` step passes on a student's repository holding the reference. Every step's command is `learnkd check
    TOPIC` (the structure test above). The `all` step runs on such a repository in tests/test_progress.py, on a
    subset of MNIST with a cached teacher (where the floors may fail); that the same `learnkd check all` passes on
    the reference with all of MNIST is tests/test_check_all.py (with --solutions, on a terminal)."""
    _, workflow = written
    [step] = [s for s in graders(workflow) if s["with"]["test-name"] == "loss"]
    proc = run_step(step["with"]["command"], *student_repository)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # the command grader gives the points on exit 0
    assert "✓" in proc.stdout


def all_step(out: Path) -> str:
    """The command of the workflow's `all` step, as `learnkd github-classroom --out OUT` writes it."""
    result = CliRunner().invoke(cli, ["github-classroom", "--out", str(out)])
    assert result.exit_code == 0, result.output
    workflow = yaml.safe_load((out / ".github" / "workflows" / "classroom.yml").read_text())
    [step] = [s for s in graders(workflow) if s["with"]["test-name"] == ALL]
    return step["with"]["command"]
