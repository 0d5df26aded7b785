"""`learnkd check all` shows what it is doing on a terminal, and keeps its output clean everywhere else.

Two tests run the real command on the reference solutions, once under a pseudo-terminal (Python's ``pty``)
and once with pipes, on real MNIST whose training split is cut to its first ``TRAIN_IMAGES`` images (a copy
of the files in a temporary folder, passed with --data-dir), so the end-to-end trainings take seconds; the
topic checks run as always. What is tested is what the learner sees, not how long it takes. A third runs
GitHub Classroom's `all` step with the teacher the terminal's run left in its user cache.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest

from grader.course.stubs import SOLUTIONS
from grader.lab.data import SPLITS, find_raw_file
from test_github_classroom import all_step, run_step

TRAIN_IMAGES = 4096  # the topic checks use the first 2,048 and a few hundred held out; the rest trains end to end
LEARNKD = shutil.which("learnkd") or str(Path(sys.executable).with_name("learnkd"))
COMMAND = [LEARNKD, "check", "all", "--solutions", "--no-cache"]
COMMAND_CACHED = COMMAND[:-1]  # with a user cache of its own, which starts empty
RUN_LIMIT_S = 1800  # a stuck run fails the test instead of hanging it (the grader's own limit for `all`)
BAR = re.compile(r"\|[█▏▎▍▌▋▊▉#]+")  # tqdm's bar, in either charset
ESTIMATE = re.compile(r"\[\d\d:\d\d<\d\d:\d\d")  # tqdm's [elapsed<remaining]


def raw(path: Path) -> bytes:
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


@pytest.fixture(scope="module")
def small_mnist(tmp_path_factory, mnist_dir) -> Path:
    """MNIST with the training split cut to its first TRAIN_IMAGES images (IDX files: a header, then bytes)."""
    folder = tmp_path_factory.mktemp("mnist")
    target = folder / "MNIST" / "raw"
    target.mkdir(parents=True)
    images, labels, _ = SPLITS["train"]
    for name, header, each in ((images, 16, 28 * 28), (labels, 8, 1)):
        data = raw(find_raw_file(mnist_dir, name))
        count = struct.pack(">I", TRAIN_IMAGES)
        (target / name).write_bytes(data[:4] + count + data[8:header] + data[header:header + TRAIN_IMAGES * each])
    for name in SPLITS["test"][:2]:
        (target / name).write_bytes(raw(find_raw_file(mnist_dir, name)))
    return folder


def environment(data: Path) -> dict:
    return dict(os.environ, LEARNKD_DATA=str(data), COLUMNS="", LINES="")


def on_terminal(command: list[str], env: dict, columns: int = 120) -> tuple[str, int]:
    """Run ``command`` with a pseudo-terminal as its stdin, stdout and stderr; all it wrote, and its exit code."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a terminal of a known size, as a learner's has
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
        os.execvpe(command[0], command, env)
    chunks, deadline = [], time.monotonic() + RUN_LIMIT_S
    try:
        while time.monotonic() < deadline:
            if not select.select([fd], [], [], 5.0)[0]:
                continue
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
        else:
            os.kill(pid, 9)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return b"".join(chunks).decode(errors="replace"), os.waitstatus_to_exitcode(status)


@pytest.fixture(scope="module")
def terminal_run(small_mnist, tmp_path_factory):
    """`learnkd check all --solutions` on a terminal, with a user cache of its own (empty: the teacher trains, and is
    kept there): what it wrote, its exit code, and its HOME."""
    home = tmp_path_factory.mktemp("home")
    env = dict(environment(small_mnist), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    out, code = on_terminal(COMMAND_CACHED, env)
    return out, code, home


@pytest.mark.slow
def test_check_all_on_a_terminal_shows_each_phase_with_bars_and_estimates(terminal_run):
    out, code, _ = terminal_run
    assert code in (0, 1), out[-3000:]  # 4,096 training images: the end-to-end floors may fail, nothing else
    assert "Traceback" not in out, out[-3000:]
    lines = out.replace("\r", "\n")
    assert "fix the failing topics first" not in lines, "a topic failed, so nothing trained end to end: " + "\n".join(
        line for line in lines.splitlines() if "✗" in line or "did not" in line)
    for phase in ("grading all: every topic's checks", "starting the grader", "checking models (1/5)", "checking loss (2/5)", "checking train (3/5)",
                  "checking evaluate (4/5)", "end to end (5/5)", "(1/3) training your Teacher",
                  "(1/3) your Teacher: trained in", "(2/3) distilling your Student", "(3/3) training the same Student",
                  "timing the models", "end to end: done in"):
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


@pytest.mark.slow
def test_check_all_off_a_terminal_writes_lines_only_and_clean_json(small_mnist, tmp_path):
    results = tmp_path / "results.json"
    proc = subprocess.run([*COMMAND, "--json", str(results)], capture_output=True, text=True,
                          env=environment(small_mnist), timeout=RUN_LIMIT_S, stdin=subprocess.DEVNULL)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "fix the failing topics first" not in proc.stdout, "a topic failed, so nothing trained end to end: " + \
        proc.stdout[-3000:]
    for stream in (proc.stdout, proc.stderr):
        assert "\r" not in stream and not BAR.search(stream) and not ESTIMATE.search(stream), stream[-2000:]
    assert "checking train (3/5)" in proc.stderr and "(2/3) distilling your Student" in proc.stderr
    assert "epoch 1/2" not in proc.stderr, "no training bars off a terminal"
    assert "1 image" in proc.stdout and "agrees: the share" in proc.stdout
    text = results.read_text()
    assert "\r" not in text and not BAR.search(text)
    assert json.loads(text)["tests"]


@pytest.mark.slow
def test_the_workflow_step_takes_the_teacher_from_the_user_cache(terminal_run, small_mnist, tmp_path):
    """GitHub Classroom's `all` step on a student's repository holding the reference, with the teacher the run above
    trained in the user cache: it trains no teacher (its row says cached). On 4,096 images the end-to-end floors may
    fail; on all of MNIST the step passes (tests/test_check_all.py)."""
    _, _, home = terminal_run
    repo = tmp_path / "repo"
    shutil.copytree(SOLUTIONS, repo / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(environment(small_mnist), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    proc = run_step(all_step(tmp_path / "template"), repo, env)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "fix the failing topics first" not in proc.stdout, proc.stdout[-3000:]
    teacher_row = next(line for line in proc.stdout.splitlines() if line.strip().startswith("teacher"))
    assert teacher_row.rstrip().endswith("cached"), proc.stdout
