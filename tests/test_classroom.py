"""`learnkd grade` (a class at once), points.toml, and the Gradescope bundle.

The grading runs are the topic `loss` only (a few seconds each); the adversarial submissions have a test
file of their own (tests/test_adversarial.py).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import zipfile
from pathlib import Path
from xml.etree import ElementTree

import pytest
from click.testing import CliRunner

from grader.classroom import batch as classroom
from grader.course import points as points_module
from grader.classroom.batch import OUTPUT_NAMES, find_layout, prepare, unique_names, unpack, write_atomic
from grader.grading import sandbox
from grader.cli import cli
from grader.classroom.gradescope import write_bundle
from grader.grading.results import CheckResult, gradescope
from grader.course.stubs import SOLUTIONS

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"
LEARNKD = Path(sys.executable).with_name("learnkd")


def copy_of_reference(folder: Path, loss_from: Path | None = None) -> Path:
    shutil.copytree(SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    if loss_from:
        shutil.copy(loss_from, folder / "loss.py")
    return folder


def zip_folder(folder: Path, archive: Path, prefix: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for path in folder.rglob("*.py"):
            zf.write(path, prefix + path.relative_to(folder).as_posix())
    return archive


def read_gradebook(out: Path) -> dict[str, dict]:
    with open(out / "gradebook.csv") as f:
        return {row["submission"]: row for row in csv.DictReader(f)}


# ---------------------------------------------------------------------------------------------------
# preparing submissions (no grading process)


def test_unpack_skips_paths_outside_the_folder(tmp_path):
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("../escaped.py", "x = 1")
        zf.writestr("/abs.py", "x = 1")
        zf.writestr("inner/loss.py", "x = 1")
    unpack(archive, tmp_path / "into")
    assert (tmp_path / "into" / "inner" / "loss.py").is_file()
    assert not (tmp_path / "escaped.py").exists()
    assert [p.name for p in (tmp_path / "into").rglob("*.py")] == ["loss.py"]


def test_prepare_finds_a_nested_folder_in_a_zip_and_explains_a_bad_one(tmp_path):
    archive = zip_folder(SOLUTIONS, tmp_path / "alice.zip", prefix="alice-lab/exercises/")
    handin = prepare(archive, tmp_path / "work", "alice", ["loss"])
    assert handin.problem is None
    assert sorted(p.name for p in handin.folder.glob("*.py")) == sorted(p.name for p in SOLUTIONS.glob("*.py"))
    (tmp_path / "broken.zip").write_bytes(b"not a zip")
    broken = prepare(tmp_path / "broken.zip", tmp_path / "work", "broken", ["loss"])
    assert broken.folder is None and "broken.zip could not be graded" in broken.problem
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "holds no exercise file" in prepare(empty, tmp_path / "work", "empty", ["loss"]).problem


def test_find_layout_prefers_the_folder_with_the_exercise_files(tmp_path):
    copy_of_reference(tmp_path / "project" / "exercises")
    (tmp_path / "project" / "notes").mkdir()
    (tmp_path / "project" / "notes" / "loss.py").write_text("# a scratch copy")
    assert find_layout(tmp_path / "project") == tmp_path / "project" / "exercises"


def test_points_come_from_the_points_file(tmp_path, monkeypatch):
    table = tmp_path / "points.toml"
    table.write_text('default = 2\n[topics]\nloss = 3\n[checks]\ntest_special = 7\n"test_x.py::test_case[a]" = 5\n')
    monkeypatch.setenv(points_module.POINTS_ENV, str(table))
    assert points_module.points("test_x.py::test_special[T=4]", "loss") == 7
    assert points_module.points("test_x.py::test_case[a]", "loss") == 5
    assert points_module.points("test_x.py::test_case[b]", "loss") == 3
    assert points_module.points("test_models.py::test_y", "models") == 2
    report = gradescope([CheckResult("test_x.py::test_special", "loss", "special", "passed"),
                         CheckResult("test_m.py::test_y", "models", "y", "failed", "wrong")], 1.0, "")
    assert (report["score"], report["max_score"]) == (7.0, 9.0)


def test_malformed_points_files_are_one_paragraph(tmp_path, monkeypatch):
    table = tmp_path / "points.toml"
    monkeypatch.setenv(points_module.POINTS_ENV, str(table))
    for text, says in (("[[[ broken", "not valid TOML"), ('default = "two"', "default is 'two'"),
                       ("[topics]\nloss = -1", "loss in [topics] is -1"), ("checks = 3", "checks must be a table"),
                       ("bonus = 1", "bonus is not a setting")):
        table.write_text(text)
        points_module._load.cache_clear()
        with pytest.raises(points_module.PointsError, match=re.escape(says)) as err:
            points_module.points("test_loss.py::test_x", "loss")
        assert "\n" not in str(err.value) and str(table) in str(err.value)
    monkeypatch.setenv(points_module.POINTS_ENV, str(tmp_path / "missing.toml"))
    with pytest.raises(points_module.PointsError, match="does not exist"):
        points_module.load_points()
    points_module._load.cache_clear()


def test_grade_with_a_malformed_points_file_is_exit_2_before_grading(tmp_path, monkeypatch):
    (tmp_path / "points.toml").write_text("[checks]\ntest_x = 1\n[checks]\n")
    monkeypatch.setenv(points_module.POINTS_ENV, str(tmp_path / "points.toml"))
    points_module._load.cache_clear()
    result = CliRunner().invoke(cli, ["grade", str(SOLUTIONS), "--out", str(tmp_path / "out"), "--topics", "loss"])
    points_module._load.cache_clear()
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert "not valid TOML" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_check_json_with_a_malformed_points_file_is_exit_2_before_grading(tmp_path):
    (tmp_path / "points.toml").write_text("default = [1]\n")
    env = dict(os.environ, LEARNKD_POINTS=str(tmp_path / "points.toml"))
    proc = subprocess.run([str(LEARNKD), "check", "loss", "--solutions", "--json", str(tmp_path / "r.json")],
                          capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "default is [1]" in proc.stderr and "Traceback" not in proc.stderr
    assert "checks" not in proc.stdout and not (tmp_path / "r.json").exists(), "nothing was graded"


def test_grade_refuses_without_a_sandbox_unless_told(tmp_path, monkeypatch):
    monkeypatch.setattr(sandbox, "kind", lambda: sandbox.NONE)
    junk = tmp_path / "junk.txt"
    junk.write_text("not a submission")  # never reaches a grading run: nothing runs without isolation here
    refused = CliRunner().invoke(cli, ["grade", str(junk), "--out", str(tmp_path / "out"), "--topics", "loss"])
    assert refused.exit_code == 2 and "--no-sandbox" in refused.output and "bubblewrap" in refused.output
    assert not (tmp_path / "out").exists()
    allowed = CliRunner().invoke(cli, ["grade", str(junk), "--out", str(tmp_path / "out"), "--topics", "loss",
                                       "--no-sandbox"])
    assert allowed.exit_code == 0, allowed.output
    assert allowed.output.count("without isolation") == 1
    assert read_gradebook(tmp_path / "out")["junk"]["total"] == "0"


def test_unique_names_never_take_an_output_name(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "alice").write_text("a file the instructor keeps here")
    odd = ["gradebook.csv", "junit.xml", "GRADEBOOK.CSV", ".", "..", "..zip", ".hidden", "with space", "élève",
           "日本語", "a" * 250, "alice", "-", "gradebook.csv.zip", "junit.xml.ipynb"]
    sources = []
    for name in odd:
        path = tmp_path / "class" / name
        if name.endswith((".zip", ".ipynb")):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("x")
        else:
            path = Path(name) if name in (".", "..") else path
            if name not in (".", ".."):
                path.mkdir(parents=True)
        sources.append(path)
    names = unique_names(sources, tmp_path / "out")
    assert len({n.casefold() for n in names}) == len(names)
    for name in names:
        assert name and not name.startswith(".") and name.casefold() not in OUTPUT_NAMES and len(name) <= 80
        assert "/" not in name and " " not in name and name not in ("alice",)
    assert names[odd.index("élève")] == "élève" and names[odd.index("with space")] == "with_space"


def test_grade_survives_any_submission_name(tmp_path, monkeypatch):
    classroom_dir = tmp_path / "class"
    for name in ("gradebook.csv", "junit.xml", "class-report.html", "with space", "élève", "here"):
        (classroom_dir / name).mkdir(parents=True)  # empty: "could not be graded", so no grading run is needed
    for name in ("..zip", "gradebook.csv.zip", "junit.xml.ipynb"):
        (classroom_dir / name).write_bytes(b"broken")
    out = classroom_dir / "out"
    out.mkdir()
    (out / "gradebook.csv").write_text("the previous gradebook\n")
    monkeypatch.chdir(classroom_dir / "here")
    args = ["../gradebook.csv", "../junit.xml", "../class-report.html", "../with space", "../élève", "../..zip", "../gradebook.csv.zip",
            "../junit.xml.ipynb", ".", ".."]
    result = CliRunner().invoke(cli, ["grade", *args, "--out", "../out", "--topics", "loss"])
    assert result.exit_code == 0, result.output
    rows = read_gradebook(out)
    assert len(rows) == len(args) + 1 and all("could not be graded" in r["crash"] for n, r in rows.items() if n[0] != "(")
    for name in rows:
        if name != "(points possible)":
            assert json.loads((out / name / "results.json").read_text())["score"] == 0
    assert ElementTree.parse(out / "junit.xml").getroot().get("name") == "learnkd"
    assert sorted(p.name for p in out.iterdir() if p.is_file()) == ["class-report.html", "gradebook.csv", "junit.xml"]


def test_outputs_are_written_whole_or_not_at_all(tmp_path, monkeypatch):
    target = tmp_path / "gradebook.csv"
    target.write_text("the previous gradebook\n")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(classroom.os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, b"half of a new one")
    assert target.read_text() == "the previous gradebook\n"
    assert [p.name for p in tmp_path.iterdir()] == ["gradebook.csv"]  # the temporary file went too
    monkeypatch.undo()
    write_atomic(target, b"the new one\n")
    assert target.read_bytes() == b"the new one\n" and [p.name for p in tmp_path.iterdir()] == ["gradebook.csv"]
    assert target.stat().st_mode & 0o044 == 0o044 & ~classroom.umask()  # readable as any file the user writes


# ---------------------------------------------------------------------------------------------------
# grading a class


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory):
    """Four submissions graded on `loss` with CliRunner: correct, not started, zipped, not a submission."""
    root = tmp_path_factory.mktemp("class")
    good = copy_of_reference(root / "good")
    stub = copy_of_reference(root / "stub", loss_from=EXERCISES / "loss.py")
    zipped = zip_folder(SOLUTIONS, root / "zipped.zip", prefix="lab/")
    junk = root / "junk.txt"
    junk.write_text("hello")
    out = root / "out"
    result = CliRunner().invoke(cli, ["grade", str(good), str(stub), str(zipped), str(junk), "--out", str(out),
                                      "--topics", "loss", "--jobs", "2"])
    return result, out


@pytest.mark.slow
def test_grade_writes_a_gradebook_with_the_same_points_possible_for_everyone(graded_class):
    result, out = graded_class
    assert result.exit_code == 0, result.output
    rows = read_gradebook(out)
    possible = float(rows["(points possible)"]["loss"])
    assert possible > 0 and float(rows["(points possible)"]["total"]) == possible
    assert float(rows["good"]["loss"]) == possible and float(rows["zipped"]["loss"]) == possible
    assert float(rows["stub"]["loss"]) == 0
    assert float(rows["junk"]["total"]) == 0 and "could not be graded" in rows["junk"]["crash"]
    assert list(rows["good"])[:4] == ["submission", "source", "loss", "total"]


@pytest.mark.slow
def test_grade_writes_results_json_that_agrees_with_the_gradebook(graded_class):
    _, out = graded_class
    rows = read_gradebook(out)
    for name in ("good", "stub", "zipped", "junk"):
        report = json.loads((out / name / "results.json").read_text())
        assert report["score"] == float(rows[name]["total"])
        assert report["max_score"] == float(rows["(points possible)"]["total"])
    stub_report = json.loads((out / "stub" / "results.json").read_text())
    assert any("not started" in t["output"] for t in stub_report["tests"])


@pytest.mark.slow
def test_grade_writes_a_junit_report(graded_class):
    _, out = graded_class
    suites = ElementTree.parse(out / "junit.xml").getroot()
    by_name = {s.get("name"): s for s in suites.findall("testsuite")}
    assert set(by_name) == {"good", "stub", "zipped", "junk"}
    assert by_name["good"].get("failures") == "0" and int(by_name["good"].get("tests")) > 0
    assert by_name["stub"].get("failures") == by_name["stub"].get("tests")
    assert by_name["junk"].find("system-err") is not None
    assert int(suites.get("tests")) == sum(int(s.get("tests")) for s in by_name.values())


def test_grade_rejects_an_unknown_topic(tmp_path):
    result = CliRunner().invoke(cli, ["grade", str(SOLUTIONS), "--out", str(tmp_path), "--topics", "loss,nope"])
    assert result.exit_code == 2 and "nope" in result.output


@pytest.mark.slow
def test_grade_as_a_real_command(tmp_path):
    submission = copy_of_reference(tmp_path / "carol")
    env = dict(os.environ, LEARNKD_POINTS=str(tmp_path / "points.toml"))
    (tmp_path / "points.toml").write_text("default = 2.5\n")
    proc = subprocess.run([str(LEARNKD), "grade", str(submission), "--out", str(tmp_path / "out"), "--topics", "loss",
                           "--timeout", "120", "--memory", "6144"], capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads((tmp_path / "out" / "carol" / "results.json").read_text())
    assert report["max_score"] == 2.5 * len(report["tests"]) and report["score"] == report["max_score"]
    assert "carol" in proc.stdout and "gradebook.csv" in proc.stdout


# ---------------------------------------------------------------------------------------------------
# the Gradescope bundle


def test_bundle_files_are_written_and_executable(tmp_path):
    written = write_bundle(tmp_path / "bundle", topic="loss")
    bundle = tmp_path / "bundle"
    for name in ("setup.sh", "run_autograder"):
        assert os.access(bundle / name, os.X_OK), name
        assert (bundle / name).read_text().startswith("#!/usr/bin/env bash")
    assert 'LEARNKD_TOPIC:-loss' in (bundle / "run_autograder").read_text()
    assert (bundle / "learnkd" / "pyproject.toml").is_file() and (bundle / "learnkd" / "grader" / "course" / "points.toml").is_file()
    with zipfile.ZipFile(bundle / "autograder.zip") as zf:
        modes = {i.filename: i.external_attr >> 16 for i in zf.infolist()}
    assert modes["run_autograder"] & stat.S_IXUSR and modes["setup.sh"] & stat.S_IXUSR
    assert bundle / "autograder.zip" in written


def run_autograder(bundle: Path, tree: Path) -> dict:
    env = dict(os.environ, LEARNKD_AUTOGRADER=str(tree), LEARNKD_BIN=str(LEARNKD), LEARNKD_PYTHON=sys.executable,
               LEARNKD_RUN_AS="")
    proc = subprocess.run(["bash", str(bundle / "run_autograder")], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads((tree / "results" / "results.json").read_text())


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    out = tmp_path_factory.mktemp("bundle")
    write_bundle(out, topic="loss")
    return out


@pytest.mark.slow
def test_run_autograder_grades_a_submission_in_a_fake_autograder_tree(bundle, tmp_path):
    tree = tmp_path / "autograder"
    copy_of_reference(tree / "submission")  # Gradescope puts the uploaded files right there
    report = run_autograder(bundle, tree)
    assert report["max_score"] > 0 and report["score"] == report["max_score"]
    assert all(t["name"].startswith("loss: ") for t in report["tests"])


def test_run_autograder_reports_a_submission_it_cannot_grade(bundle, tmp_path):
    tree = tmp_path / "autograder"
    (tree / "submission").mkdir(parents=True)
    (tree / "submission" / "lab.zip").write_bytes(b"this is no zip")
    (tree / "results").mkdir()
    (tree / "results" / "results.json").write_text('{"score": 100}')  # left over: must not survive
    report = run_autograder(bundle, tree)
    assert report["score"] == 0 and "could not be graded" in report["output"]
