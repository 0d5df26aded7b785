"""The judge's side of the worker: start it in the sandbox, send requests, read replies with a deadline.

Every reply is decoded by ``wire`` (plain values, plain tensors) and nothing in it is trusted beyond
that. A request that runs past its time limit kills the whole sandbox; so does a reply that is not a
well-formed frame. The next request starts a fresh worker, which imports the submission again.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from grader.worker import wire
from grader.grading import sandbox
from grader.grading.zygote import ForkedWorker, ZygoteGone, start_worker

REPLY_LIMIT = 256 * 2**20  # bytes of one reply: the largest is a trained Teacher's graph and weights
START_TIMEOUT_S = 120  # starting Python and torch, and importing the submission, on a busy 2-core machine


class LearnerError(Exception):
    """The learner's code raised: its type, its message, its frames (file, line, function, source)."""

    def __init__(self, record: dict):
        record = record if isinstance(record, dict) else {}
        self.type = str(record.get("type", "Exception"))[:100]
        self.message = str(record.get("message", ""))[:2000]
        self.kind = str(record.get("kind", "error"))
        frames = record.get("frames")
        self.frames = [f for f in frames if isinstance(f, dict)] if isinstance(frames, list) else []
        super().__init__(f"{self.type}: {self.message}")


class WorkerGone(Exception):
    """The worker stopped answering: it ended, was killed, broke the protocol, or ran out of time."""

    def __init__(self, reason: str, timeout: bool = False, frames: list | None = None):
        super().__init__(reason)
        self.reason, self.timeout, self.frames = reason, timeout, frames or []


@dataclass
class Settings:
    """What the worker is told at start: its limits and its thread count."""
    memory_mb: int | None = None
    output_mb: int | None = 256
    cpu_s: int | None = None
    processes: int | None = 512
    threads: int = 1

    def to_dict(self, folder: Path) -> dict:
        return {"memory_mb": self.memory_mb, "output_mb": self.output_mb, "cpu_s": self.cpu_s,
                "processes": self.processes, "threads": self.threads, "folder": str(folder)}


@dataclass
class WorkerProcess:
    """One submission's worker, started on demand and restarted after a crash or a timeout."""
    submission: Path  # the private copy of the submission (the worker may write to it)
    sandbox: str = sandbox.NONE
    settings: Settings = field(default_factory=Settings)
    device: str = "cpu"
    log: object = None  # a file for the worker's stderr; None: the judge's stderr
    zygote_fd: int | None = None  # the batch's worker zygote (grader.grading.zygote), if any
    callbacks: dict[str, Callable] = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    loaded: dict | None = None  # {"errors": {stem: {...}}, "modules": [...]} from the last start
    starts: int = 0
    failed_start: "WorkerGone | None" = None  # how importing the submission failed, once it has

    def start(self) -> None:
        self.stop()
        # Outside a sandbox the worker's scratch folder is a temporary folder here; inside, it is the sandbox's own.
        self.scratch = None
        if self.sandbox == sandbox.NONE:
            self.scratch = Path(tempfile.mkdtemp(prefix="learnkd-scratch-"))
        self.starts += 1
        self.loaded = None
        if self.zygote_fd is not None and self.sandbox == sandbox.BWRAP and self.device == "cpu":
            try:
                self.proc = start_worker(self.zygote_fd, self.log.fileno() if self.log is not None else 2)
            except ZygoteGone:
                self.zygote_fd = None  # and a sandbox of its own, below
            else:
                self.seen_as = Path(sandbox.SUBMISSION)
                self._send({**self.settings.to_dict(self.seen_as), "files": submission_files(self.submission)})
                return
        command, seen_as = sandbox.worker_command(self.submission, self.scratch, self.sandbox, self.device)
        self.seen_as = seen_as
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=self.log if self.log is not None else None, **worker_user())
        copy_from = sandbox.HANDED_IN if self.sandbox != sandbox.NONE else None
        self._send({**self.settings.to_dict(seen_as), "copy_from": copy_from})

    def ready(self) -> dict:
        """The load report ({"errors", "modules"}), once the worker has imported the submission.

        A worker that dies or hangs while importing the submission would do so again: that failure is kept
        and every later request fails with it at once.
        """
        if self.failed_start is not None:
            raise self.failed_start
        if self.proc is None or self.proc.poll() is not None:
            self.start()
        if self.loaded is not None:
            return self.loaded
        try:
            reply = self._receive(time.monotonic() + START_TIMEOUT_S, "starting", START_TIMEOUT_S)
            if not isinstance(reply, dict) or not isinstance(reply.get("ok"), dict):
                self.stop()
                raise WorkerGone("the worker did not load the submission")
        except WorkerGone as err:
            err.reason = f"while your files were being imported, {err.reason}"
            err.args = (err.reason,)
            self.failed_start = err
            raise
        self.loaded = reply["ok"]
        return self.loaded

    def stop(self) -> None:
        if self.proc is not None:
            # the sandbox tool's end ends its whole PID namespace (bwrap --die-with-parent, unshare --kill-child)
            try:
                self.proc.kill()
            except (ProcessLookupError, PermissionError):
                pass
            for stream in (self.proc.stdin, self.proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass
            self.proc.wait()
            self.proc = None
        if getattr(self, "scratch", None) is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None

    def request(self, message: dict, timeout: float, what: str = "your code"):
        """Send ``message``; the worker's reply (callbacks answered on the way) or LearnerError / WorkerGone."""
        self.ready()
        deadline = time.monotonic() + timeout
        self._send(message)
        while True:
            reply = self._receive(deadline, what, timeout)
            if isinstance(reply, dict) and "callback" in reply:
                self._answer(reply)
                continue
            if isinstance(reply, dict) and "ok" in reply:
                return reply["ok"]
            if isinstance(reply, dict) and "error" in reply:
                raise LearnerError(reply["error"])
            self.stop()
            raise WorkerGone("the worker sent something that is not a reply, so its results cannot be trusted")

    def _answer(self, reply: dict) -> None:
        handler = self.callbacks.get(reply.get("callback"))
        try:
            if handler is None:
                raise ValueError("the judge answers no such question now")
            answer = {"ok": handler(reply)}
        except Exception as err:  # the judge's own error, in words, back to the learner's code
            answer = {"error": str(err)[:2000]}
        self._send(answer)

    # -- framing ------------------------------------------------------------------------------------

    def _send(self, message: dict) -> None:
        try:
            wire.send(self.proc.stdin.fileno(), message)
        except (BrokenPipeError, OSError):
            self._gone("")

    def _receive(self, deadline: float, what: str, timeout: float | None = None):
        fd = self.proc.stdout.fileno()
        try:
            (size,) = struct.unpack(">Q", self._read(fd, 8, deadline, what, timeout))
            if size > REPLY_LIMIT:
                raise wire.WireError("too large")
            header = self._read(fd, size, deadline, what, timeout)
            import json

            sizes = json.loads(header).get("blobs", [])
            total = sum(s for s in sizes if type(s) is int and s >= 0)
            if total > REPLY_LIMIT:
                raise wire.WireError("too large")
            return wire.unpack(header, self._read(fd, total, deadline, what, timeout))
        except (wire.WireError, ValueError, AttributeError, UnicodeDecodeError):
            self.stop()
            raise WorkerGone("the worker sent something that is not a reply, so its results cannot be trusted") from None

    def _read(self, fd: int, n: int, deadline: float, what: str, timeout: float | None) -> bytes:
        chunks, left = [], n
        while left:
            wait = deadline - time.monotonic()
            ready = select.select([fd], [], [], max(0.0, wait))[0] if wait > 0 else []
            if not ready:
                self._timed_out(what, timeout)
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                self._gone(what)
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _timed_out(self, what: str, timeout: float | None):
        frames = self.stack()
        self.stop()
        raise WorkerGone(f"did not finish within {timeout:.0f} s" if timeout else "did not start in time",
                         timeout=True, frames=frames)

    def stack(self) -> list[dict]:
        """Where the learner's code is now: on SIGUSR1 the worker writes its Python stack to its reply pipe."""
        if self.proc is None or self.proc.poll() is not None:
            return []
        if isinstance(self.proc, ForkedWorker):
            self.proc.send_signal(signal.SIGUSR1)
        else:
            pid = _worker_pid(self.proc.pid)
            if not pid:
                return []
            try:
                os.kill(pid, signal.SIGUSR1)
            except OSError:
                return []
        fd, chunks, deadline = self.proc.stdout.fileno(), [], time.monotonic() + 0.5
        while time.monotonic() < deadline and sum(map(len, chunks)) < 65536:
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                break
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        text = b"".join(chunks).decode(errors="replace")
        folder = re.escape(str(self.seen_as))
        frames = []
        for file, line, name in re.findall(rf'File "{folder}/([^"/]+\.py)", line (\d+) in (\S+)', text):
            frames.append({"file": file, "line": int(line), "name": name, "text": ""})
        return list(reversed(frames))  # faulthandler lists the innermost call first

    def _gone(self, what: str):
        code = self.proc.wait() if self.proc is not None else None
        self.stop()
        if code is not None and code < 0:
            name = signal.Signals(-code).name if -code in signal.Signals._value2member_map_ else str(-code)
            reason = {"SIGXFSZ": "was stopped for writing too much output (SIGXFSZ)",
                      "SIGXCPU": "used up its CPU time (SIGXCPU)"}.get(
                name, f"was killed by signal {-code} ({name}: a crash in native code, or out of memory)")
        elif code == 0:
            reason = "ended before answering, with exit code 0: does your code call os._exit()? A function must return its result"
        else:
            reason = f"ended with exit code {code} before answering"
        raise WorkerGone(f"the process running your code {reason}")


def submission_files(folder: Path) -> list:
    """The private copy's files as plain data, [relative path, bytes as a uint8 tensor], for a forked worker,
    which has no view of the copy."""
    import torch

    files = []
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            content = torch.frombuffer(bytearray(data), dtype=torch.uint8) if data else torch.empty(0, dtype=torch.uint8)
            files.append([path.relative_to(folder).as_posix(), content])
    return files


WORKER_USER_ENV = "LEARNKD_WORKER_USER"  # run as root with it set, the worker runs as that user (Gradescope)


def worker_user() -> dict:
    """Popen's arguments that start the worker as $LEARNKD_WORKER_USER (when the judge runs as root): the
    learner's code then cannot read the judge's files, write its results or signal it, sandbox or not."""
    name = os.environ.get(WORKER_USER_ENV)
    if not name or os.geteuid() != 0:
        return {}
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise WorkerGone(f"${WORKER_USER_ENV} names the user {name!r}, who does not exist (a setting of the "
                         "grader, not your code)") from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _worker_pid(pid: int) -> int | None:
    """The Python worker among ``pid`` and its descendants (the sandbox tool starts it as a child)."""
    try:
        children = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                    ppid = int(stat.rsplit(")", 1)[1].split()[1])
                    children.setdefault(ppid, []).append(int(entry.name))
                except (OSError, ValueError, IndexError):
                    continue
        queue, found = [pid], []
        while queue:
            current = queue.pop()
            found.append(current)
            queue += children.get(current, [])
        for candidate in reversed(found):
            try:
                if b"learnkd_worker" in (Path("/proc") / str(candidate) / "cmdline").read_bytes():
                    return candidate
            except OSError:
                continue
    except OSError:
        return None
    return None
