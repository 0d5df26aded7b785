"""The sandbox the worker runs in, probed from inside by a submission that tries what a hostile one would.

The probe's models.py runs at import, in the worker, and prints what it could do to the worker's log:
read HOME or the project, write the system, fill a disk, reach 127.0.0.1, see other processes, keep a capability,
import the reference. Each sandbox that works on this machine (bwrap, unshare) is probed; one that
cannot be made here is skipped, saying so.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from grader.grading import sandbox
from grader.grading.worker_process import WorkerProcess

ROOT = Path(__file__).resolve().parent.parent

PROBE = r'''
import json, os, socket, sys

def attempt(fn):
    try:
        return ["ok", repr(fn())[:200]]
    except BaseException as err:
        return ["refused", type(err).__name__]

def write(path):
    with open(path, "w") as f:
        f.write("x")
    return path

def fill(folder):
    written = 0
    for i in range(40):  # 400 MB, more than the sandbox's folders hold
        with open(os.path.join(folder, f"fill-{i}.bin"), "wb") as f:
            f.write(b"x" * 10 * 2**20)
        written += 10
    return written

def kernel_setting():
    current = open("/proc/sys/kernel/core_pattern").read()
    with open("/proc/sys/kernel/core_pattern", "w") as f:  # the same value: a write that would change nothing
        f.write(current)

def user_namespace():
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x10000000) != 0:  # CLONE_NEWUSER: where cgroupfs could be mounted
        raise OSError(ctypes.get_errno(), "unshare")

PORT = int(open(os.path.join(os.path.dirname(__file__), "port.txt")).read())
found = {
    "home": attempt(lambda: os.listdir(os.path.expanduser("~"))),
    "real_home": attempt(lambda: os.listdir(REAL_HOME)),
    "secret": attempt(lambda: open(SECRET).read()),
    "project": attempt(lambda: os.listdir(PROJECT)),
    "write_system": attempt(lambda: write("/usr/learnkd-probe")),
    "write_submission": attempt(lambda: write("written-by-probe.txt")),
    "fill_submission": attempt(lambda: fill(".")),
    "fill_scratch": attempt(lambda: fill("/scratch")),
    "connect": attempt(lambda: socket.create_connection(("127.0.0.1", PORT), timeout=2).sendall(b"stolen")),
    "processes": attempt(lambda: len([p for p in os.listdir("/proc") if p.isdigit()])),
    "capabilities": attempt(lambda: [l.split()[1] for l in open("/proc/self/status") if l.startswith("CapEff")][0]),
    "kernel_setting": attempt(kernel_setting),
    "user_namespace": attempt(user_namespace),
    "solutions": attempt(lambda: __import__("importlib").import_module("solu" + "tions")),
    "grader": attempt(lambda: __import__("importlib").import_module("gra" + "der")),
    "wait_policy": attempt(lambda: os.environ.get("OMP_WAIT_POLICY")),
}
print("PROBE " + json.dumps(found), file=sys.stderr, flush=True)
'''

KINDS = [sandbox.BWRAP, sandbox.UNSHARE]


def available(kind: str) -> bool:
    command = (sandbox.bwrap_command if kind == sandbox.BWRAP else sandbox.unshare_command)(["true"], Path("/"), Path("/"))
    return sandbox._works(command)


@pytest.fixture
def listener():
    """A listener on 127.0.0.1 that records every byte it receives; stops itself after 60 s."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    server.settimeout(0.5)
    received = []
    stop = time.monotonic() + 60

    def serve():
        while time.monotonic() < stop:
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1)
                try:
                    received.append(conn.recv(1024))
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop = 0
    thread.join(timeout=5)
    server.close()


@pytest.mark.parametrize("kind", KINDS)
def test_a_submission_in_the_sandbox_reaches_nothing_outside(kind, tmp_path, monkeypatch, listener):
    if not available(kind):
        pytest.skip(f"the {kind} sandbox cannot be made on this machine")
    port, received = listener
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    secret = home / ".ssh" / "id_rsa"
    secret.write_text("PRIVATE KEY")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    folder = tmp_path / "submission"
    folder.mkdir()
    os.chmod(folder, 0o777)
    (folder / "port.txt").write_text(str(port))
    header = f"REAL_HOME = {str(home)!r}\nSECRET = {str(secret)!r}\nPROJECT = {str(ROOT)!r}\n"
    (folder / "models.py").write_text(header + PROBE)
    log = tmp_path / "worker.log"
    with open(log, "wb") as stream:
        process = WorkerProcess(folder, sandbox=kind, log=stream)
        try:
            process.start()
            loaded = process.ready()
        finally:
            process.stop()
    text = log.read_text()
    assert "PROBE " in text, text[-2000:]
    found = json.loads(text.split("PROBE ", 1)[1].splitlines()[0])
    assert "models" in loaded["modules"], loaded
    assert found["home"] == ["ok", "[]"], found["home"]  # its own, empty HOME
    for what in ("real_home", "secret", "project", "write_system", "connect", "solutions", "grader",
                 "fill_submission", "fill_scratch", "kernel_setting", "user_namespace"):  # its folders are in memory and bounded: no disk to fill
        assert found[what][0] == "refused", (what, found[what])
    assert found["write_submission"][0] == "ok"  # its own copy is writable
    assert int(found["processes"][1]) <= 3, found["processes"]  # its own PID namespace
    assert found["capabilities"][1].strip("'") == "0000000000000000", found["capabilities"]
    assert received == [] and not Path("/usr/learnkd-probe").exists()
    assert found["wait_policy"] == ["ok", "'PASSIVE'"], "PyTorch's threads sleep while they wait (grader.lab.cores)"
    assert sorted(p.name for p in folder.iterdir()) == ["models.py", "port.txt"]  # the handed-in copy is untouched


def test_the_best_sandbox_here_is_named():
    assert sandbox.kind() in (sandbox.BWRAP, sandbox.UNSHARE, sandbox.NONE)


def test_the_worker_and_the_judge_wait_asleep_unless_the_user_said_otherwise(monkeypatch):
    from grader.grading import judge_environment

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert sandbox.passed_environment() == {"OMP_NUM_THREADS": "3", "OMP_WAIT_POLICY": "PASSIVE"}
    assert judge_environment()["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert sandbox.passed_environment()["OMP_WAIT_POLICY"] == "ACTIVE" == judge_environment()["OMP_WAIT_POLICY"]
    command = sandbox.unshare_command(["true"], Path("/"))
    assert "OMP_WAIT_POLICY=ACTIVE" in command[-3] and "OMP_NUM_THREADS=3" in command[-3]
