"""Workers forked from one sandboxed process that has already loaded PyTorch (the grader's side).

A batch (`learnkd grade`) or `learnkd watch` starts ``Zygote`` once (``grader.grading.warm_judges``), and does
not wait for it: ``grader.worker.zygote`` in a
bubblewrap sandbox with a worker's view and no submission. A judge that holds the zygote's socket asks it for each worker
(``start_worker``); the worker it gets is forked into namespaces of its own (that module says which) and
runs the worker's code as one started on its own does. ``ForkedWorker`` is what ``WorkerProcess`` uses of
a ``Popen``. Anything that goes wrong here raises ``ZygoteGone``, and the judge starts its worker in a
sandbox of its own instead.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

from grader.grading import sandbox

START_TIMEOUT_S = 180  # the zygote loads PyTorch once, on a machine that may be busy grading
MESSAGE_LIMIT = 4096


class ZygoteGone(Exception):
    """The zygote cannot start a worker (the judge starts one the usual way)."""


class Zygote:
    """The worker zygote of one batch or watch; pass ``fd`` to each judge, ``close`` when they are done."""

    def __init__(self, popen_args: dict | None = None, training: bool = True):
        """Start the zygote; it loads PyTorch while the rest starts (the first workers asked for wait for it).
        ``popen_args``: the user the sandbox runs as (``worker_process.worker_user``); ``training``: its workers will
        train or export models, so it loads what they need for that too."""
        if sandbox.kind() != sandbox.BWRAP:
            raise ZygoteGone("the worker zygote needs bubblewrap")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control = ours
        self.proc = subprocess.Popen(sandbox.zygote_command(theirs.fileno(), training), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     pass_fds=(theirs.fileno(),), **(popen_args or {}))
        theirs.close()

    def wait_ready(self, timeout: float = START_TIMEOUT_S) -> None:
        """Return once the zygote has loaded and can make a worker's namespaces; else ZygoteGone with its reason."""
        self.control.settimeout(timeout)
        try:
            news = json.loads(self.control.recv(MESSAGE_LIMIT) or b"{}")
        except (OSError, ValueError) as err:
            news = {"unavailable": str(err)}
        finally:
            self.control.settimeout(None)
        if news.get("ready") is not True:
            raise ZygoteGone(str(news.get("unavailable", "the zygote ended before it was ready")))

    @property
    def fd(self) -> int:
        return self.control.fileno()

    def close(self) -> None:
        """End the zygote and every worker it forked (they live in its sandbox)."""
        self.proc.kill()  # bubblewrap's end ends the sandbox's PID namespace, nested ones too
        self.proc.wait()
        self.control.settimeout(10)
        try:  # the zygote's end closes once the kernel has ended it: then nothing can be sent to it
            while self.control.recv(MESSAGE_LIMIT):
                pass
        except OSError:
            pass
        self.control.close()


class ForkedWorker:
    """A worker forked by the zygote: its pipes, and what ``Popen`` offers (poll, wait, kill)."""

    def __init__(self, stdin, stdout, reply: socket.socket, pidfd: int, pid: int):
        self.stdin, self.stdout, self.reply, self.pidfd, self.pid = stdin, stdout, reply, pidfd, pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self._status(blocking=False)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.reply.settimeout(timeout)
            try:
                self._status(blocking=True)
            except socket.timeout:
                raise subprocess.TimeoutExpired("worker", timeout) from None
        return self.returncode

    def _status(self, blocking: bool) -> None:
        try:
            data = self.reply.recv(MESSAGE_LIMIT, 0 if blocking else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except socket.timeout:
            raise
        except OSError:
            data = b""
        try:
            status = json.loads(data).get("status") if data else None
        except ValueError:
            status = None
        self.returncode = status if type(status) is int else -signal.SIGKILL  # the keeper went: so did the worker
        self._close()

    def send_signal(self, signum: int) -> None:
        """To the worker itself (SIGUSR1: where is your code now?)."""
        if self.returncode is None and self.pidfd >= 0:
            try:
                signal.pidfd_send_signal(self.pidfd, signum)
            except OSError:
                pass

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _close(self) -> None:
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1
        self.reply.close()


def start_worker(control_fd: int, stderr: int) -> ForkedWorker:
    """Ask the zygote on ``control_fd`` for a worker whose stderr is ``stderr``."""
    worker_in, to_worker = os.pipe()
    from_worker, worker_out = os.pipe()
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    control = socket.socket(fileno=os.dup(control_fd))  # the judge's copy of the zygote's socket stays open
    try:
        socket.send_fds(control, [b"{}"], [worker_in, worker_out, stderr, theirs.fileno()])
        ours.settimeout(START_TIMEOUT_S)  # a fork and a few mounts, once the zygote has loaded
        message, fds, _, _ = socket.recv_fds(ours, MESSAGE_LIMIT, 1)
        news = json.loads(message) if message else {}
        if type(news.get("pid")) is not int or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            raise ZygoteGone(str(news.get("error", "the zygote did not start the worker")))
        ours.settimeout(None)
    except (OSError, ValueError, ZygoteGone) as err:
        ours.close()
        for fd in (to_worker, from_worker):
            os.close(fd)
        raise ZygoteGone(str(err)) from None
    finally:
        control.close()
        theirs.close()
        os.close(worker_in)
        os.close(worker_out)
    return ForkedWorker(os.fdopen(to_worker, "wb", buffering=0), os.fdopen(from_worker, "rb", buffering=0), ours,
                        fds[0], news["pid"])
