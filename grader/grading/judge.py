"""The judge: runs the hidden checks on one submission and writes what each one found.

Started by ``grader.grading.run_grading`` as ``python -m grader.grading.judge REQUEST.json``. It holds the
reference, the checks, the diagnosis, every tolerance and expected value, and it never imports or
runs the submission: the checks reach the learner's code through ``remote.Remote``, which asks a
worker process in the sandbox (``sandbox``, ``worker_process``) and gets plain data back. The judge
sends the list of checks, then each check's result as soon as it ends, then an end record, on the
results pipe whose descriptor it reads from stdin.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from pluggy import HookimplMarker

from grader.grading import session
from grader.grading.channel import CHECK, END, PLAN, Writer
from grader.grading.request import GradingRequest
from grader.grading.worker_process import LearnerError, Settings, WorkerGone, WorkerProcess

hookimpl = HookimplMarker("pytest")  # pytest's own marker, without importing pytest yet
# pytest, torch and the checks load after the worker has started (``main``): both then load at once.

CHECKS_DIR = Path(__file__).resolve().parent.parent / "checks"
MESSAGE_LIMIT = 2000  # characters of a learner's exception message that a result keeps



def check_name(item) -> str:
    """The check's sentence: the first docstring line, plus the parameters when it has several cases."""
    doc = (item.function.__doc__ or item.originalname.replace("_", " ")).strip().splitlines()[0]
    callspec = getattr(item, "callspec", None)
    return f"{doc} [{callspec.id}]" if callspec else doc


def shown_frames(frames: list[dict], folder: str) -> list[str]:
    """``exercises/loss.py:31 in distillation_loss: <line>`` for each of the learner's frames."""
    from grader.lab.submission import display_path

    lines = []
    for frame in frames:
        file = Path(str(frame.get("file", "?"))).name
        text = str(frame.get("text") or "").strip()
        lines.append(f"{display_path(Path(folder) / file)}:{frame.get('line')} in {frame.get('name')}"
                     + (f": {text}" if text else ""))
    return lines


def learner_cause(err: BaseException) -> LearnerError | WorkerGone | None:
    """The learner's error behind ``err``: itself, or the one it was raised from."""
    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, (LearnerError, WorkerGone)):
            return err
        err, seen = err.__cause__ or err.__context__, seen + 1
    return None


def explain(err: BaseException, folder: str, timeout: float) -> dict:
    """The learner-facing message of a failed check, and whether the stub was never filled in."""
    from grader.grading.checking import CheckFailed

    cause = learner_cause(err)
    frames = shown_frames(getattr(cause, "frames", []) or [], folder)
    if isinstance(err, CheckFailed):
        own = shown_frames(getattr(err, "frames", None) or [], folder)  # the line a value mistake comes from
        mistake = err.mistake if isinstance(getattr(err, "mistake", None), str) else None
        return {"message": str(err), "frames": own or frames, "not_started": False, "mistake": mistake}
    if isinstance(err, WorkerGone):
        if err.timeout:
            where = f" It was running {frames[-1].split(': ')[0]} when it was stopped." if frames else ""
            return {"message": f"did not finish within {timeout:.0f} s: is there a loop that never ends?{where}",
                    "frames": frames, "not_started": False}
        return {"message": f"{err.reason}; the check could not finish.", "frames": frames, "not_started": False}
    if isinstance(err, LearnerError):
        first = (err.message.strip().splitlines() or ["(no message)"])[0][:MESSAGE_LIMIT]
        if err.kind == "not_implemented" and frames:
            return {"message": f"not started: {err.message}", "frames": frames, "not_started": True}
        if err.kind == "exit":
            return {"message": "your code called sys.exit() (or exit()): a function must return its result; it may "
                               "not end the program.", "frames": frames, "not_started": False}
        if err.kind == "memory":
            return {"message": "your code ran out of memory: is a tensor far bigger than it should be, or does a list "
                               f"keep growing? ({err.type}: {first})", "frames": frames, "not_started": False}
        if err.kind == "runaway":
            return {"message": f"did not finish: {first}", "frames": frames, "not_started": False}
        origin = "your code raised" if frames else "running your code raised"
        return {"message": f"{origin} {err.type}: {first}", "frames": frames, "not_started": False}
    text = str(err).strip()
    first = (text.splitlines()[0] if text else "(no message)")[:MESSAGE_LIMIT]
    return {"message": f"the check raised {type(err).__name__}: {first} (a bug in the grader, not in your code)",
            "frames": [], "not_started": False}


def grader_traceback(excinfo, node) -> None:
    """Where the grader itself failed, from ``node``'s file (a check module) on, into the judge's log (pytest runs
    with --tb=no: ``pytest_args``), whose end a crash report quotes (``grader.grading.crash_reason``); in-process
    gradings (the project's tests) print it."""
    excinfo.traceback = excinfo.traceback.cut(path=node.path)
    print(excinfo.getrepr(style="short"), flush=True)


class Collector:
    """A pytest plugin that sends the list of checks, then each check's result, through the channel."""

    def __init__(self, channel: Writer, folder: str, timeout: float):
        self.channel, self.folder, self.timeout = channel, folder, timeout
        self.planned: dict[str, dict] = {}
        self.reported: set[str] = set()
        self.collect_errors = 0

    topic_of = staticmethod(session.topic_of)

    def pytest_collectreport(self, report):
        self.collect_errors += report.failed

    def pytest_exception_interact(self, node, call, report):
        if report.when == "collect":  # a check module that cannot be imported: a bug in the grader
            import pytest

            err = call.excinfo.value
            if isinstance(err, pytest.Collector.CollectError):  # pytest's own words, with the traceback
                print(err.args[0] if err.args else err, flush=True)
            else:
                grader_traceback(call.excinfo, node)

    def pytest_collection_finish(self, session):
        # Sent before any learner code runs: the grader knows every check even if the run dies.
        plan = [{"id": item.nodeid, "topic": self.topic_of(item), "name": check_name(item)} for item in session.items]
        self.planned = {p["id"]: p for p in plan}
        self.channel.send(PLAN, {"checks": plan})

    @hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" or (report.when == "setup" and not report.passed):
            record = {"id": item.nodeid, "topic": self.topic_of(item), "name": check_name(item),
                      "status": report.outcome if report.outcome in ("passed", "skipped") else "failed",
                      "duration": round(report.duration, 3), "message": "", "frames": [], "not_started": False,
                      "output": getattr(item, "learnkd_output", "")}
            if report.failed and call.excinfo is not None:
                record.update(explain(call.excinfo.value, self.folder, self.timeout))
                from grader.grading.checking import CheckFailed  # loaded by the checks already

                if not isinstance(call.excinfo.value, (CheckFailed, WorkerGone, LearnerError)):
                    grader_traceback(call.excinfo, item)  # "a bug in the grader": where, for whoever fixes it
            elif report.skipped and call.excinfo is not None:
                value = call.excinfo.value
                record["message"] = str(getattr(value, "msg", value))
            item.learnkd_record = record

    @hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        yield
        record = getattr(item, "learnkd_record", None)
        if record is not None:
            self.reported.add(item.nodeid)
            self.channel.send(CHECK, record)

    def finish(self, code: int) -> None:
        """A failed result for each check that never ran, then the end record."""
        missing = [p for i, p in self.planned.items() if i not in self.reported]
        why = "the checks were interrupted" if code == 2 else "the test session was stopped early"
        for check in missing:
            self.channel.send(CHECK, {**check, "status": "failed", "duration": 0.0, "message": f"did not run: {why}",
                                      "frames": [], "not_started": False, "output": ""})
        self.channel.send(END, {"missing": [p["id"] for p in missing], "why": why if missing else ""})


def pytest_args(request: GradingRequest, request_file: str) -> list[str]:
    from grader.course.topics import ALL, topic_names

    markers = [t for t in request.topics if t in topic_names()]
    if ALL in request.topics:
        markers = [*topic_names(), ALL]
    # Only the selected topics' modules: the others would cost their imports (seconds) for nothing.
    # --tb=no: a failure's message is ``explain``'s (Collector); pytest's own report of it would parse the source
    # of every file in its traceback, half a second a failed check (15 failed checks: 8 s against 0.4 s).
    modules = [CHECKS_DIR / f"test_{'end_to_end' if m == ALL else m}.py" for m in markers]
    return [*map(str, modules), "-m", " or ".join(markers), "--learnkd-request", request_file,
            "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:debugging", "-p", "no:pastebin",
            "-p", "no:timeout", "-p", "no:unraisableexception", "-p", "no:threadexception", "--assert=plain", "-q",
            "--no-header", "--tb=no",
            "--rootdir", str(CHECKS_DIR), "-c", str(CHECKS_DIR / "pytest.ini")]


def read_config() -> dict:
    """The run's settings, one JSON line on stdin."""
    line = sys.stdin.readline()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return json.loads(line)


def main(argv: list[str], config: dict | None = None) -> int:
    """Grade the request in the file ``argv[0]``; ``config``: the run's settings (default: read from stdin)."""
    request_file = argv[0]
    config = read_config() if config is None else config
    session.quiet = quiet = bool(config.get("worker_log")) or not config.get("progress", True)
    with open(request_file) as f:
        session.request = request = GradingRequest(**json.load(f))
    # pytest captures fd 2 during checks; this copy is not
    session.progress_stream = progress_stream = os.fdopen(os.dup(2), "w")
    if "all" in request.topics:  # `check all`: say something before PyTorch loads
        session.progress("starting the grader: PyTorch loads here and in the sandbox (seconds)")
    channel = Writer(config.pop("fd"), bytes.fromhex(config.pop("key")))
    # The worker starts first: Python and torch load in the sandbox while the judge loads its own.
    settings = Settings(memory_mb=config.get("memory_mb") or None, output_mb=config.get("output_mb"),
                        cpu_s=config.get("cpu_s"), threads=config.get("threads", 1))
    log = open(config["worker_log"], "ab", buffering=0) if config.get("worker_log") else None
    process = WorkerProcess(Path(request.path), sandbox=config["sandbox"], settings=settings,
                            device=request.device, log=log, zygote_fd=config.get("zygote_fd"))
    process.start()
    import pytest

    from grader.grading.phases import Phases  # a line per topic, and on a terminal a bar: never silent for long
    from grader.grading.remote import Remote

    session.remote = Remote(process, request.check_timeout)
    collector = Collector(channel, request.display or request.path, request.check_timeout)
    try:
        code = pytest.main(pytest_args(request, request_file), plugins=[collector, Phases(progress_stream, not quiet)])
    finally:
        process.stop()
    if code in (0, 1, 5) or (code == 2 and not collector.collect_errors):
        collector.finish(int(code))
        code = 0
    channel.close()
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
