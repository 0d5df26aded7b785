"""The judge's checks run in this process against a worker that also runs here: fast grading of honest code
(the banks, their files in a notebook, the end-to-end failure tests).

``grade(folder, topic)`` is ``run_grading`` without its two processes and the sandbox: the same private copy
of the folder, the judge's pytest session (``judge.pytest_args``) with its ``Collector`` writing signed
records that ``channel.read`` checks, ``remote.Remote`` for the checks, and the worker's own code
(``serve.load_submission``, ``tasks.run``, ``serve.error_record``) for the learner's side, every message
and reply through ``wire`` both ways as it travels between the processes. What it leaves out is what a
process boundary adds: limits on memory, output and CPU, killing a hung request (here a request that runs
past its limit is interrupted by SIGALRM), and isolation, which the honest banks do not need and which
tests/test_sandbox.py, tests/test_adversarial.py and the banks' few whole gradings (tests/test_bank.py) test.
"""

from __future__ import annotations

import json
import secrets
import shutil
import signal
import struct
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from grader.grading import Grading, channel, copy_submission, judge, session
from grader.grading.remote import Remote
from grader.grading.request import GradingRequest
from grader.grading.results import CheckResult
from grader.grading.worker_process import LearnerError, WorkerGone
from grader.worker import serve, tasks, wire

FRESH_SEED = 67280421310721  # torch's default seed: the random state of a worker process that just started


def roundtrip(value):
    """``value`` as the other process decodes it."""
    data = wire.pack({"v": value})
    (size,) = struct.unpack(">Q", data[:8])
    return wire.unpack(data[8:8 + size], data[8 + size:])["v"]


class Interrupted(BaseException):
    """A request ran past its time limit (raised by SIGALRM inside the learner's code)."""


class InProcessWorker:
    """``WorkerProcess``'s side that the judge sees (ready, request, callbacks, stop), serving in this process.

    The submission is imported under the worker's own package name, which only one grading holds at a
    time; the worker's random state, default dtype and grad mode are its own, swapped in for each request."""

    def __init__(self, folder: Path):
        self.callbacks: dict = {}
        self.worker = serve.Worker(-1, -1)
        self.worker.callback = self._callback
        self.worker.folder = folder.resolve()
        self.loaded: dict | None = None
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(FRESH_SEED)
            self.worker_state = (torch.get_rng_state(), torch.float32, True)
        self.forget()
        with self.as_worker(None):
            serve.load_submission(self.worker, self.worker.folder)
        self.loaded = roundtrip({"errors": self.worker.errors, "modules": sorted(self.worker.modules)})

    @staticmethod
    def forget() -> None:
        for name in [n for n in sys.modules if n == serve.PACKAGE or n.startswith(serve.PACKAGE + ".")]:
            del sys.modules[name]

    def ready(self) -> dict:
        return self.loaded

    def stop(self) -> None:
        self.forget()

    @staticmethod
    def state() -> tuple:
        return torch.get_rng_state(), torch.get_default_dtype(), torch.is_grad_enabled()

    @staticmethod
    def restore(state: tuple) -> None:
        torch.set_rng_state(state[0])
        torch.set_default_dtype(state[1])
        torch.set_grad_enabled(state[2])

    @contextmanager
    def as_worker(self, timeout: float | None):
        """The worker's global state in, the judge's out; SIGALRM after ``timeout`` seconds."""
        self.judge_state = self.state()
        self.restore(self.worker_state)

        def alarm(signum, frame):
            raise Interrupted()

        previous = signal.signal(signal.SIGALRM, alarm) if timeout else None
        if timeout:
            signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            yield
        finally:
            if timeout:
                signal.setitimer(signal.ITIMER_REAL, 0)
                signal.signal(signal.SIGALRM, previous)
            self.worker_state = self.state()
            self.restore(self.judge_state)

    @contextmanager
    def as_judge(self):
        """Inside a request, the judge answering a callback: its own state back for the answer."""
        worker_state = self.state()
        self.restore(self.judge_state)
        try:
            yield
        finally:
            self.judge_state = self.state()
            self.restore(worker_state)

    def request(self, message: dict, timeout: float, what: str = "your code"):
        message = roundtrip(message)
        try:
            with self.as_worker(timeout):
                try:
                    reply = {"ok": tasks.run(self.worker, message)}
                except (Interrupted, KeyboardInterrupt):
                    raise
                except BaseException as err:  # as serve.main: the learner's code may raise anything
                    reply = {"error": serve.error_record(err, self.worker.folder)}
        except Interrupted as err:
            frames = serve.learner_frames(err.__traceback__, self.worker.folder)
            raise WorkerGone(f"did not finish within {timeout:.0f} s", timeout=True, frames=frames) from None
        try:
            reply = roundtrip(reply)
        except BaseException as err:  # an unencodable reply is an error too
            reply = roundtrip({"error": serve.error_record(err, self.worker.folder)})
        if "ok" in reply:
            return reply["ok"]
        raise LearnerError(reply["error"])

    def _callback(self, name: str, **payload):
        message = roundtrip({"callback": name, **payload})
        handler = self.callbacks.get(name)
        with self.as_judge():
            try:
                if handler is None:
                    raise ValueError("the judge answers no such question now")
                answer = {"ok": handler(message)}
            except Exception as err:
                answer = {"error": str(err)[:2000]}
        answer = roundtrip(answer)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["ok"]


class UpTo:
    """A pytest plugin that keeps the checks up to the last whose name (``judge.check_name``) holds ``words``, in
    their order: the checks before it leave their marks on the worker (a function already stopped for a loop that
    never ends, a model already exported, the random state), so each kept check judges as in the whole run."""

    def __init__(self, words: str):
        self.words, self.matched = words, 0

    @pytest.hookimpl(trylast=True)  # after the topic's markers have deselected the other topics
    def pytest_collection_modifyitems(self, items, config):
        last = max((i for i, item in enumerate(items) if self.words in judge.check_name(item)), default=-1)
        self.matched = last + 1
        config.hook.pytest_deselected(items=items[last + 1:])
        items[:] = items[:last + 1]


def grade(folder: Path, topic: str, data_dir: str | None = None, check_timeout: float = 30.0,
          up_to: str | None = None) -> Grading:
    """``run_grading(GradingRequest(path=folder, topics=[topic], ...))``, in this process; with ``up_to``, the
    checks up to the last whose name holds those words (``UpTo``: the later ones would cost their time and change
    nothing the caller reads)."""
    request = GradingRequest(path=str(folder), topics=[topic], data_dir=data_dir, check_timeout=check_timeout)
    grading = Grading(request)
    tmp = Path(tempfile.mkdtemp(prefix="learnkd-inprocess-"))
    saved = (session.remote, session.request, session.progress_stream, session.quiet)
    try:
        copy = tmp / "submission"
        notes = copy_submission(folder, copy)
        private = GradingRequest(**{**request.to_dict(), "path": str(copy), "display": str(folder.resolve()),
                                    "notes": notes})
        request_file = tmp / "request.json"
        request_file.write_text(json.dumps(private.to_dict()))
        key = secrets.token_bytes(32)
        with open(tmp / "channel", "w+b") as out:
            writer = channel.Writer(out.fileno(), key)
            worker = InProcessWorker(copy)
            session.request, session.progress_stream, session.quiet = private, None, True
            session.remote = Remote(worker, private.check_timeout)
            collector = judge.Collector(writer, private.display, private.check_timeout)
            try:
                selection = UpTo(up_to) if up_to else None
                plugins = [collector, *([selection] if selection else [])]
                code = pytest.main(judge.pytest_args(private, str(request_file)), plugins=plugins)
                assert selection is None or selection.matched, f"no check of {topic} is named like {up_to!r}"
            finally:
                worker.stop()
            assert code in (0, 1), f"the judge's pytest session ended with {code!r}"
            collector.finish(int(code))
            out.seek(0)
            received = channel.read(out.read(), key)
        assert received.forged is None and received.end == {"missing": [], "why": ""}, received
        grading.plan = received.plan
        grading.results = [CheckResult(**r) for r in received.checks]
    finally:
        session.remote, session.request, session.progress_stream, session.quiet = saved
        shutil.rmtree(tmp, ignore_errors=True)
    return grading
