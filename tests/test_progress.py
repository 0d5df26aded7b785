"""`learnkd check all` keeps its output clean off a terminal, and a later run takes the teacher it cached.

The real command runs on the reference solutions with pipes for its output, on real MNIST whose training split
is cut to its first ``TRAIN_IMAGES`` images (a copy of the files in a temporary folder, passed as LEARNKD_DATA),
so the end-to-end trainings take seconds; the topic checks run as always. What is tested is what the learner
sees, not how long it takes. Then GitHub Classroom's `all` step runs with the teacher that run left in its user
cache. (On a terminal, with its bars, on all of MNIST: tests/test_check_all.py, which uses ``on_terminal``.)
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

TRAIN_IMAGES = 2560  # the topic checks use the first 2,048 and the next 500 (held out); end to end trains on all
LEARNKD = shutil.which("learnkd") or str(Path(sys.executable).with_name("learnkd"))
COMMAND = [LEARNKD, "check", "all", "--solutions"]  # each run with a user cache of its own, which starts empty
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
def piped_run(small_mnist, tmp_path_factory):
    """`learnkd check all --solutions --json FILE` with pipes for its output, and a user cache of its own (empty: the
    teacher trains, and is kept there): the finished process, the results file, and its HOME."""
    home, results = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("out") / "results.json"
    env = dict(environment(small_mnist), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    proc = subprocess.run([*COMMAND, "--json", str(results)], capture_output=True, text=True, env=env,
                          timeout=RUN_LIMIT_S, stdin=subprocess.DEVNULL)
    return proc, results, home


@pytest.mark.slow
def test_check_all_off_a_terminal_writes_lines_only_and_clean_json(piped_run):
    proc, results, _ = piped_run
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr  # 2,560 training images: the floors may fail
    assert "fix the failing topics first" not in proc.stdout, "a topic failed, so nothing trained end to end: " + \
        proc.stdout[-3000:]
    for stream in (proc.stdout, proc.stderr):
        assert "\r" not in stream and not BAR.search(stream) and not ESTIMATE.search(stream), stream[-2000:]
    assert "checking train (3/5)" in proc.stderr and "(2/3) distilling your Student" in proc.stderr
    assert "(1/3) training your Teacher" in proc.stderr, "the user cache started empty"
    assert "epoch 1/2" not in proc.stderr, "no training bars off a terminal"
    assert "1 image" in proc.stdout and "agrees: the share" in proc.stdout
    text = results.read_text()
    assert "\r" not in text and not BAR.search(text)
    assert json.loads(text)["tests"]


@pytest.mark.slow
def test_the_workflow_step_takes_the_teacher_from_the_user_cache(piped_run, small_mnist, tmp_path):
    """GitHub Classroom's `all` step on a student's repository holding the reference, with the teacher the run above
    trained in the user cache: it trains no teacher (its row says cached). On 2,560 images the end-to-end floors may
    fail; on all of MNIST `check all` passes (tests/test_check_all.py)."""
    _, _, home = piped_run
    assert len(list((home / ".cache" / "learnkd" / "teachers").glob("teacher-*.pt"))) == 1
    repo = tmp_path / "repo"
    shutil.copytree(SOLUTIONS, repo / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    env = dict(environment(small_mnist), HOME=str(home), XDG_CACHE_HOME=str(home / ".cache"))
    proc = run_step(all_step(tmp_path / "template"), repo, env)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    assert "fix the failing topics first" not in proc.stdout, proc.stdout[-3000:]
    teacher_row = next(line for line in proc.stdout.splitlines() if line.strip().startswith("teacher"))
    assert teacher_row.rstrip().endswith("cached"), proc.stdout
