"""Judges forked from one process that has already loaded PyTorch, pytest and the checks.

`learnkd grade` needs a judge (``grader.grading.judge``) for every submission, `learnkd watch` one for every
check, and most of a judge's start is importing PyTorch and the checks: seconds of CPU each time. ``Judges``
starts ``python -m grader.grading.forkserver`` once for a batch or a watch (``grader.grading.warm_judges``); it
imports what a judge imports, then waits. For each grading it forks a judge that runs ``judge.main`` exactly as
``python -m grader.grading.judge`` would, in a session of its own, with the results pipe, the log and the
stderr it was handed. The server and its judges never import or run a submission: each judge starts its own
worker in its own sandbox, or has the zygote fork one.

The protocol, on a Unix socket pair the server inherits: one message per judge, ``{"argv", "config", "cwd"}`` with
four descriptors (a socket for the judge's news, the results pipe, the log for its stdout, its stderr: the log
too, or the terminal of `learnkd watch`); on that socket the server
answers ``{"pid": N}`` at once and ``{"status": CODE}`` when the judge ends (CODE as ``Popen.returncode``:
negative for a signal). The server ends when its socket closes, killing any judge still running.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time

MESSAGE_LIMIT = 65536  # bytes of one start message: a file name and the run's settings
START_TIMEOUT_S = 180  # the server's own start (loading PyTorch and the checks) on a very busy machine, then a fork


class ServerGone(Exception):
    """The fork server is not there to start a judge (the caller starts one the usual way)."""


class ForkedJudge:
    """A judge started by the server: what ``run_grading`` uses of a ``Popen`` (pid, wait)."""

    def __init__(self, news: socket.socket, pid: int):
        self.news, self.pid, self.returncode = news, pid, None

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is not None:
            return self.returncode
        self.news.settimeout(timeout)
        try:
            data = self.news.recv(MESSAGE_LIMIT)
        except socket.timeout:
            raise subprocess.TimeoutExpired("judge", timeout) from None
        status = json.loads(data).get("status") if data else None
        self.returncode = status if type(status) is int else -signal.SIGKILL  # the server went: so did its judges
        self.news.close()
        return self.returncode


class Judges:
    """The fork server of one batch or watch; ``start`` forks a judge, ``close`` ends the server and its judges.
    Each judge has the environment the server started with, and the working folder of the ``start`` call."""

    def __init__(self, env: dict, zygote_fd: int | None = None):
        """``zygote_fd``: the worker zygote (``grader.grading.zygote``), inherited by every judge, which asks it
        for its worker."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.control, self.lock, self.zygote_fd = ours, threading.Lock(), zygote_fd
        self.started = 0  # judges asked for
        # its output goes nowhere: each judge writes to its own log, and a server that fails is started around
        self.proc = subprocess.Popen([sys.executable, "-m", "grader.grading.forkserver", str(theirs.fileno())],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     env=env, pass_fds=(theirs.fileno(), *([] if zygote_fd is None else [zygote_fd])))
        theirs.close()

    def start(self, argv: list[str], config: dict, results_fd: int, log_fd: int, stderr_fd: int | None = None
              ) -> ForkedJudge:
        """Fork a judge whose stdout is ``log_fd`` and stderr ``stderr_fd`` (default: the log too)."""
        news, for_judge = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            with self.lock:
                if self.proc.poll() is not None:
                    raise ServerGone(f"the fork server ended with exit code {self.proc.returncode}")
                if self.zygote_fd is not None:
                    config = {**config, "zygote_fd": self.zygote_fd}
                message = json.dumps({"argv": argv, "config": config, "cwd": os.getcwd()}).encode()
                self.started += 1
                socket.send_fds(self.control, [message], [for_judge.fileno(), results_fd, log_fd,
                                                           log_fd if stderr_fd is None else stderr_fd])
        except OSError as err:
            news.close()
            raise ServerGone(str(err)) from None
        finally:
            for_judge.close()
        news.settimeout(START_TIMEOUT_S)
        try:
            data = news.recv(MESSAGE_LIMIT)
        except OSError as err:
            news.close()  # the server, seeing this end closed, will not start this judge after all
            raise ServerGone(f"no answer from the fork server ({err})") from None
        pid = json.loads(data).get("pid") if data else None
        if type(pid) is not int:
            news.close()
            raise ServerGone("the fork server did not start the judge")
        return ForkedJudge(news, pid)

    def close(self) -> None:
        self.control.close()  # the server sees the end of its socket, kills its judges and exits
        if not self.started:  # none to kill: do not wait for a server still loading (a watch with nothing to do)
            self.proc.kill()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------------------------------
# The server


def preload() -> None:
    """What every judge imports, imported once here: PyTorch, pytest, and the checks with their conftest,
    collected as a judge's run collects them (nothing of it starts a thread or runs the learner's code)."""
    import pytest
    import torch  # noqa: F401

    from grader.course.topics import ALL
    from grader.grading import judge, phases, remote  # noqa: F401
    from grader.grading.request import GradingRequest

    pytest.main([*judge.pytest_args(GradingRequest(topics=[ALL]), os.devnull), "--collect-only"])
    sys.stdout.flush()  # what it printed stays here, not in the first judge's log


def run_judge(argv: list[str], config: dict, log_fd: int, stderr_fd: int, cwd: str | None) -> int:
    """In the forked child: become a judge process of its own, run the judge, return its exit code."""
    os.setsid()  # its own process group: the grader kills it and its worker together
    if cwd:  # the grader's working folder, as a judge process of its own has it (messages show paths from it)
        try:
            os.chdir(cwd)
        except OSError:
            pass
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(log_fd, 1)
    os.dup2(stderr_fd, 2)  # as the judge's Popen has them: stdout to the log, stderr to the log or the terminal
    for fd in {log_fd, stderr_fd} - {0, 1, 2}:
        os.close(fd)
    from grader.grading import judge

    try:
        return judge.main(argv, config)
    except SystemExit as err:
        return err.code if isinstance(err.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        return 1


def serve(control: socket.socket) -> None:
    preload()
    judges: dict[int, socket.socket] = {}  # pid -> its news socket
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
    signal.signal(signal.SIGCHLD, lambda signum, frame: None)
    try:
        while True:
            ready = select.select([control, wake_r], [], [], 1.0)[0]
            if wake_r in ready:
                os.read(wake_r, 4096)
            reap(judges)
            if control not in ready:
                continue
            try:
                message, fds, _, _ = socket.recv_fds(control, MESSAGE_LIMIT, 4)
            except OSError:
                return
            if not message:
                return  # the grader closed its end
            if len(fds) != 4:
                for fd in fds:
                    os.close(fd)
                continue
            news_fd, results_fd, log_fd, stderr_fd = fds
            news = socket.socket(fileno=news_fd)
            if given_up(news):  # the grader stopped waiting and started a judge of its own: not a second one
                news.close()
                for fd in (results_fd, log_fd, stderr_fd):
                    os.close(fd)
                continue
            request = json.loads(message)
            config = dict(request["config"], fd=results_fd)
            pid = os.fork()
            if pid == 0:
                code = 1
                try:
                    signal.set_wakeup_fd(-1)
                    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                    for fd in (wake_r, wake_w, control.fileno(), news_fd, *(s.fileno() for s in judges.values())):
                        os.close(fd)
                    code = run_judge(list(request["argv"]), config, log_fd, stderr_fd, request.get("cwd"))
                finally:
                    for stream in (sys.stdout, sys.stderr):
                        try:
                            stream.flush()
                        except Exception:
                            pass
                    os._exit(code if isinstance(code, int) and 0 <= code < 256 else 1)
            for fd in (results_fd, log_fd, stderr_fd):
                os.close(fd)
            judges[pid] = news
            try:
                news.send(json.dumps({"pid": pid}).encode())
            except OSError:
                pass
    finally:
        for pid in judges:
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
        deadline = time.monotonic() + 10
        while judges and time.monotonic() < deadline:
            reap(judges)
            time.sleep(0.05)


def given_up(news: socket.socket) -> bool:
    """Whether the grader has closed its end of a judge's news socket."""
    try:
        return news.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def reap(judges: dict[int, socket.socket]) -> None:
    """Tell each ended judge's grader how it ended."""
    for pid in list(judges):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
            code = os.waitstatus_to_exitcode(status) if done else None
        except ChildProcessError:  # reaped by someone else: how it ended is unknown
            done, code = pid, 1
        if not done:
            continue
        news = judges.pop(pid)
        try:
            news.send(json.dumps({"status": code}).encode())
        except OSError:
            pass
        news.close()


if __name__ == "__main__":
    serve(socket.socket(fileno=int(sys.argv[1])))
