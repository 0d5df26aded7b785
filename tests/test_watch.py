"""`learnkd watch`, driven as a learner uses it: it checks the next topic, waits, re-checks when a file is saved,
moves on when the topic passes and ends with the summary; Ctrl-C stops it with the progress saved. How long a
save took to be seen is printed (run with -s to read it), never asserted."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grader.course.watching import relevant, snapshot, wait_for_change, wait_polling

ROOT = Path(__file__).resolve().parent.parent
LEARNKD = Path(sys.executable).with_name("learnkd")
MISTAKE = ROOT / "tests" / "mistakes" / "loss" / "no_t_squared.py"


@pytest.fixture
def project(tmp_path, mnist_dir):
    """A learner whose models, train and evaluate pass and whose loss.py lacks the T**2 factor."""
    shutil.copytree(ROOT / "solutions", tmp_path / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(MISTAKE, tmp_path / "exercises" / "loss.py")
    saved = tmp_path / ".learnkd" / "progress.json"
    saved.parent.mkdir()
    done = {"status": "done", "passed": 1, "total": 1}
    saved.write_text(json.dumps({"version": 1, "hints": {},
                                 "topics": {"models": done, "train": done, "evaluate": done}}))
    env = dict(os.environ, LEARNKD_DATA=str(mnist_dir), HOME=str(tmp_path / "home"))
    return tmp_path, env


# Starts the command with Ctrl-C's signal handled as a terminal leaves it: a test run started in the background by a
# shell (as CI may be) inherits SIGINT ignored, and Python then never turns it into KeyboardInterrupt.
AS_ON_A_TERMINAL = "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"


def start(project_dir: Path, env: dict, *args: str) -> tuple[subprocess.Popen, Path]:
    log = project_dir / "watch.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-c", AS_ON_A_TERMINAL, str(LEARNKD), "watch", *args],
                                cwd=project_dir, env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


def wait_for(log: Path, text: str, proc: subprocess.Popen, timeout: float = 300) -> float:
    """The time at which ``text`` appeared in the log (polled every 20 ms)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if text in log.read_text(errors="replace"):
            return time.monotonic()
        if proc.poll() is not None and text not in log.read_text(errors="replace"):
            pytest.fail(f"watch ended (code {proc.returncode}) before saying {text!r}:\n{log.read_text()}")
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"watch did not say {text!r} within {timeout} s:\n{log.read_text()}")


@pytest.mark.parametrize("how", ["watchfiles", pytest.param("polling", marks=pytest.mark.slow)])
def test_watch_rechecks_on_save_and_ends_when_every_topic_passes(project, how):
    project_dir, env = project
    proc, log = start(project_dir, env, *(["--poll"] if how == "polling" else []))
    try:
        wait_for(log, "watching", proc)
        first = log.read_text()
        assert "checking loss" in first and "T**2" in first, first  # the mistake, named
        saved = time.monotonic()
        shutil.copy(ROOT / "solutions" / "loss.py", project_dir / "exercises" / "loss.py")  # the learner's fix
        seen = wait_for(log, "loss.py changed", proc)
        print(f"\n[{how}] the save was seen {seen - saved:.2f} s after it (debounce {0.4} s included)")
        assert proc.wait(timeout=300) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    after = text[text.index("loss.py changed"):]
    assert f"({how}," in after and "checking loss" in after, text
    assert "every topic passes" in after and "learnkd check all" in after, text
    progress = json.loads((project_dir / ".learnkd" / "progress.json").read_text())
    assert progress["topics"]["loss"]["status"] == "done"


@pytest.mark.slow
def test_ctrl_c_stops_watch_cleanly_with_the_progress_saved(project):
    project_dir, env = project
    proc, log = start(project_dir, env)
    try:
        wait_for(log, "watching", proc)
        proc.send_signal(signal.SIGINT)  # what Ctrl-C sends; to the process this test started, by its PID
        try:
            assert proc.wait(timeout=60) == 0, log.read_text()
        except subprocess.TimeoutExpired:
            pytest.fail(f"watch did not stop within 60 s of Ctrl-C:\n{log.read_text()}")
    finally:
        if proc.poll() is None:
            proc.kill()
    text = log.read_text()
    assert "progress is saved" in text and "Traceback" not in text, text
    progress = json.loads((project_dir / ".learnkd" / "progress.json").read_text())
    assert progress["topics"]["loss"]["status"] == "failing"


def test_a_save_made_while_the_check_ran_is_not_missed(tmp_path):
    (tmp_path / "loss.py").write_text("a = 1\n")
    graded = snapshot([tmp_path])
    (tmp_path / "loss.py").write_text("a = 22\n")  # saved before the watcher started
    assert wait_polling([tmp_path], since=graded, sleep=lambda s: None) == [tmp_path / "loss.py"]
    assert wait_for_change([tmp_path], since=graded)[0] == [tmp_path / "loss.py"]


def test_only_source_files_count_and_a_burst_of_saves_is_one_change(tmp_path):
    assert relevant(tmp_path / "loss.py") and relevant(tmp_path / "lab.ipynb")
    assert not any(relevant(tmp_path / name) for name in
                   (".loss.py.swp", "loss.py~", "__pycache__/loss.cpython-311.pyc", ".#loss.py", "notes.txt"))
    (tmp_path / "loss.py").write_text("a = 1\n")
    writes = iter([lambda: (tmp_path / "loss.py").write_text("a = 2\n"),  # the save
                   lambda: (tmp_path / "train.py").write_text("b = 1\n"),  # the burst goes on
                   lambda: None, lambda: None])
    looks = []

    def sleep(seconds):
        looks.append(seconds)
        next(writes, lambda: None)()

    changed = wait_polling([tmp_path], sleep=sleep)
    assert [p.name for p in changed] == ["loss.py", "train.py"], "one change for the whole burst"


def test_watch_with_every_topic_done_ends_without_loading_the_grader(project, monkeypatch):
    """The fork server and the zygote start at the first check (grader.grading.warm_judges): a watch with nothing
    left to check does not start them, so it ends at once."""
    from click.testing import CliRunner

    import grader.grading
    from grader.cli import cli

    folder, env = project
    saved = folder / ".learnkd" / "progress.json"
    progress = json.loads(saved.read_text())
    progress["topics"]["loss"] = {"status": "done", "passed": 1, "total": 1}
    saved.write_text(json.dumps(progress))
    started = []
    monkeypatch.setattr(grader.grading, "warm_judges", lambda *args, **kwargs: started.append((args, kwargs)))
    result = CliRunner().invoke(cli, ["watch", "--path", str(folder / "exercises")])
    assert result.exit_code == 0, result.output
    assert "every topic passes" in result.output and started == []


def test_watch_starts_its_workers_for_the_topics_left(project, monkeypatch):
    """The zygote loads what training needs only when a topic left to check trains (grader.grading.warm_judges):
    with models and train done, loss and evaluate are left, and neither trains."""
    from click.testing import CliRunner

    import grader.grading
    from grader.cli import cli

    folder, env = project
    saved = folder / ".learnkd" / "progress.json"
    progress = json.loads(saved.read_text())
    del progress["topics"]["evaluate"]
    saved.write_text(json.dumps(progress))
    asked = []

    def warm_judges(kind, device="cpu", topics=None):
        asked.append(topics)
        raise KeyboardInterrupt  # stands for Ctrl-C before anything starts: nothing is graded

    monkeypatch.setattr(grader.grading, "warm_judges", warm_judges)
    result = CliRunner().invoke(cli, ["watch", "--path", str(folder / "exercises")])
    assert result.exit_code == 0 and "progress is saved" in result.output, result.output
    assert asked == [["loss", "evaluate"]]  # neither trains: the zygote of such a watch does not load torch._dynamo
