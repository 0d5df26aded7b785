"""The worker zygote (grader.grading.zygote, grader.worker.zygote): workers forked from one sandboxed process
that has loaded PyTorch share nothing they can write, see nothing of each other, and end with everything
they started, when the judge stops them and when the judge itself is gone."""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from pathlib import Path

import pytest

from grader.course.stubs import SOLUTIONS
from grader.grading import copy_submission, sandbox
from grader.grading.worker_process import Settings, WorkerGone, WorkerProcess
from grader.grading.zygote import ForkedWorker, Zygote, ZygoteGone

pytestmark = pytest.mark.skipif(sandbox.kind() != sandbox.BWRAP, reason="the worker zygote runs in bubblewrap only")

PROBE = '''
import json, os, socket, subprocess, sys, time

MARK = {mark!r}
PLACES = ["/", "/dev", "/tmp", "/tmp/home", "/submission", "/scratch", "/dev/shm", "/learnkd", "/usr"]


def plant():
    """Write this worker's mark wherever it can; where it could."""
    wrote = []
    for place in PLACES:
        try:
            with open(os.path.join(place, MARK), "w") as f:
                f.write(MARK)
            wrote.append(place)
        except OSError:
            pass
    return wrote


def look():
    """What this worker sees: marks of others, processes, capabilities, the network."""
    seen = {{"marks": sorted(os.path.join(p, n) for p in PLACES if os.path.isdir(p) for n in os.listdir(p)
                             if n.startswith("mark-") and n != MARK),
             "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit()), "pid": os.getpid()}}
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    seen["caps"] = [int(status[k], 16) for k in ("CapEff", "CapPrm", "CapInh", "CapBnd", "CapAmb")]
    seen["no_new_privs"] = status["NoNewPrivs"].strip()
    seen["dynamo"] = "torch._dynamo" in sys.modules  # what a first optimizer or export would import
    seen["python_missing"] = [p for p in [sys.executable, *sys.path]
                              if p and not p.endswith(".zip") and not os.path.exists(p)]
    try:
        with open("/proc/sys/kernel/core_pattern", "r+") as f:
            f.write(f.read())
        seen["kernel_setting"] = "written"
    except OSError as err:
        seen["kernel_setting"] = err.strerror
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    seen["user_namespace"] = "made" if libc.unshare(0x10000000) == 0 else os.strerror(ctypes.get_errno())
    try:
        socket.create_connection(("127.0.0.1", 9), timeout=1).close()
        seen["network"] = "connected"
    except OSError as err:
        seen["network"] = err.strerror
    return json.dumps(seen)


def spawn(count):
    """Start ``count`` processes that sleep (until the worker ends); how many could be started."""
    started = 0
    for _ in range(count):
        try:
            subprocess.Popen(["/bin/sleep", "600"])
        except OSError:
            break
        started += 1
    return started


def linger():
    """Leave a process behind, then never return."""
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", MARK], start_new_session=True)
    while True:
        time.sleep(0.1)
'''


def test_a_batch_loads_what_training_needs_only_for_topics_that_train(monkeypatch):
    """torch._dynamo (which a first optimizer or torch.export imports) costs 2.6 s of CPU: the zygote of a batch on
    `loss` and `evaluate` does not load it, one on `train`, `models` or `all` does; `learnkd watch`'s does when a topic
    left to check trains (tests/test_watch.py)."""
    from grader import grading

    made = []

    class Recorded:
        def __init__(self, popen_args=None, training=True):
            made.append(training)
            raise ZygoteGone("recorded")

    monkeypatch.setattr("grader.grading.zygote.Zygote", Recorded)
    monkeypatch.setattr(grading, "Judges", lambda *args: None)
    for topics in (["loss", "evaluate"], ["loss", "train"], ["models"], ["all"], None):
        with grading.warm_judges(sandbox.BWRAP, "cpu", topics):
            pass
    assert made == [False, True, True, True, True]


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    z.wait_ready()
    yield z
    z.close()


def probe_submission(tmp_path: Path, mark: str) -> Path:
    folder = tmp_path / mark / "handed-in"
    shutil.copytree(SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "probe.py").write_text(PROBE.format(mark=mark))
    (folder / "models.py").write_text((folder / "models.py").read_text() + "\nfrom .probe import plant, look, linger, spawn\n")
    copy = tmp_path / mark / "copy"
    copy_submission(folder, copy)
    return copy


def forked(zygote, tmp_path: Path, mark: str) -> WorkerProcess:
    worker = WorkerProcess(probe_submission(tmp_path, mark), sandbox=sandbox.BWRAP, settings=Settings(memory_mb=8192),
                           zygote_fd=zygote.fd)
    worker.start()
    assert isinstance(worker.proc, ForkedWorker), "the zygote started it"
    assert worker.ready()["modules"] == ["evaluate", "loss", "models", "train"]
    return worker


def call(worker: WorkerProcess, name: str, timeout: float = 30):
    return worker.request({"op": "call", "module": "models", "name": name}, timeout)["value"]


def running(mark: str) -> list[int]:
    """This machine's processes whose command line holds ``mark``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and mark.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def gone(mark: str, within: float = 10) -> bool:
    deadline = time.monotonic() + within
    while running(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not running(mark)


def test_two_forked_workers_share_nothing_they_can_write_and_see_nothing_of_each_other(zygote, tmp_path):
    first, second = (forked(zygote, tmp_path, f"mark-{uuid.uuid4().hex}") for _ in range(2))
    try:
        for worker in (first, second):
            assert sorted(call(worker, "plant")) == ["/dev/shm", "/scratch", "/submission", "/tmp", "/tmp/home"]
        for worker in (first, second):
            seen = json.loads(call(worker, "look"))
            assert seen["marks"] == [], "another worker's files"
            assert seen["pid"] == 1 and seen["pids"] == [1], "its own PID namespace, and a /proc of it only"
            assert seen["caps"] == [0, 0, 0, 0, 0] and seen["no_new_privs"] == "1"
            assert seen["python_missing"] == [], "the Python environment is there, wherever it lives (CI: in /tmp)"
            assert seen["network"] != "connected"
            assert seen["kernel_setting"] != "written", "the kernel's settings are read-only"
            assert seen["user_namespace"] != "made", "no user namespace inside (cgroupfs could be mounted in one)"
            assert seen["dynamo"], "a zygote for training loaded it once for all its workers"
    finally:
        first.stop()
        second.stop()
    assert first.proc is None and second.proc is None


@pytest.mark.skipif(os.getuid() == 0, reason="root's processes are not counted against RLIMIT_NPROC")
def test_a_worker_that_starts_every_process_it_may_leaves_the_others_theirs(zygote, tmp_path):
    """Processes count against RLIMIT_NPROC per user namespace: each worker of a user's zygote has its own."""
    greedy, other = (WorkerProcess(probe_submission(tmp_path, f"mark-{uuid.uuid4().hex}"), sandbox=sandbox.BWRAP,
                                   settings=Settings(memory_mb=8192, processes=16), zygote_fd=zygote.fd)
                     for _ in range(2))
    try:
        for worker in (greedy, other):
            worker.start()
            worker.ready()
        taken = greedy.request({"op": "call", "module": "models", "name": "spawn", "args": [40]}, 30)["value"]
        assert taken < 16, "the limit holds for the greedy worker"
        assert other.request({"op": "call", "module": "models", "name": "spawn", "args": [8]}, 30)["value"] == 8
    finally:
        greedy.stop()
        other.stop()


def test_a_forked_worker_that_runs_too_long_ends_with_every_process_it_started(zygote, tmp_path):
    mark = f"mark-{uuid.uuid4().hex}"
    worker = forked(zygote, tmp_path, mark)
    with pytest.raises(WorkerGone) as err:
        call(worker, "linger", timeout=3)
    assert err.value.timeout
    assert [f["name"] for f in err.value.frames][-1] == "linger", "where its code was, read as from any worker"
    assert gone(mark), "the process it left is ended with its PID namespace"


def test_a_forked_worker_ends_when_its_judge_is_gone(zygote, tmp_path):
    mark = f"mark-{uuid.uuid4().hex}"
    worker = forked(zygote, tmp_path, mark)
    worker._send({"op": "call", "module": "models", "name": "linger"})
    deadline = time.monotonic() + 30
    while not running(mark) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running(mark)
    proc = worker.proc
    for stream in (proc.stdin, proc.stdout):  # a judge that dies kills nothing: its descriptors just close
        stream.close()
    proc.reply.close()
    os.close(proc.pidfd)
    assert gone(mark), "the keeper saw its judge go and ended the worker"


def test_without_a_zygote_the_worker_starts_in_a_sandbox_of_its_own(tmp_path):
    z = Zygote()
    z.wait_ready()
    fd = os.dup(z.fd)
    z.close()
    worker = WorkerProcess(probe_submission(tmp_path, "mark-alone"), sandbox=sandbox.BWRAP, zygote_fd=fd)
    try:
        worker.start()
        assert not isinstance(worker.proc, ForkedWorker) and worker.zygote_fd is None
        assert worker.ready()["modules"] == ["evaluate", "loss", "models", "train"]
    finally:
        worker.stop()
        os.close(fd)


def test_a_zygote_that_cannot_make_a_workers_namespaces_says_why(monkeypatch):
    real = sandbox.zygote_command

    def home_in_proc(fd, training):  # the zygote is told to make each worker's HOME where no folder can be made
        return [arg.replace(json.dumps(sandbox.HOME), json.dumps("/proc/learnkd-home")) for arg in real(fd, training)]

    monkeypatch.setattr(sandbox, "zygote_command", home_in_proc)
    z = Zygote()
    with pytest.raises(ZygoteGone, match="learnkd-home"):
        z.wait_ready()
    z.close()
