"""The grading process: runs the hidden checks on one submission and writes what each one found.

Started by ``grader.grading.run_grading`` as ``python -m grader.runner REQUEST.json``, in a process of
its own so that learner code that crashes, hangs or calls ``sys.exit`` cannot take the CLI (or the
progress file) with it. Its settings come on stdin (read, then closed, before any learner code runs):
the limits it puts on itself, and the pipe and key of the results channel (``grader.channel``). It
sends the list of checks, then each check's result as soon as the check ends (so a crash loses only
the check that was running), then an end record. ``grader.guard`` keeps the learner's code away from
the grader and the reference while it runs.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import pytest

from .channel import CHECK, END, PLAN, Writer
from .checking import CheckFailed
from .guard import Guard, drop_stand_ins, hide_reference, message as guard_message
from .request import GradingRequest
from .submission import PACKAGE, display_path
from .topics import ALL, topic_names

CHECKS_DIR = Path(__file__).resolve().parent / "checks"
CHECK_TIMEOUT_S = 30  # one check; generous for 2 slow cores, short enough that a hang costs little
STATUS = {"passed": "passed", "failed": "failed", "skipped": "skipped"}
MESSAGE_LIMIT = 2000  # characters of a learner's exception message that a result keeps

# A stream to the real terminal, for progress of long checks (pytest captures sys.stderr).
progress_stream = None


def progress(text: str) -> None:
    """Show a progress line to the learner while a long check runs."""
    if progress_stream is not None:
        progress_stream.write(text + "\n")
        progress_stream.flush()


def check_name(item) -> str:
    """The check's sentence: the first docstring line, plus the parameters when it has several cases."""
    doc = (item.function.__doc__ or item.originalname.replace("_", " ")).strip().splitlines()[0]
    callspec = getattr(item, "callspec", None)
    return f"{doc} [{callspec.id}]" if callspec else doc


def learner_frames(tb, folder: Path) -> list[str]:
    """``exercises/loss.py:31 in distillation_loss: <line>`` for each frame in the learner's folder."""
    lines = []
    for frame in traceback.extract_tb(tb):
        if Path(frame.filename).resolve().parent == folder:
            lines.append(f"{display_path(frame.filename)}:{frame.lineno} in {frame.name}: {(frame.line or '').strip()}")
    return lines


def explain(excinfo, folder: Path) -> dict:
    """The learner-facing message of a failed check, and whether the stub was never filled in."""
    err = excinfo.value
    frames = learner_frames(excinfo.tb, folder)
    if isinstance(err, CheckFailed):
        return {"message": str(err), "frames": frames, "not_started": False}
    if isinstance(err, NotImplementedError) and frames:
        return {"message": f"not started: {err}", "frames": frames, "not_started": True}
    text = str(err).strip()
    if type(err).__name__ == "Failed" and text.startswith("Timeout"):
        where = f" It was running {frames[-1].split(': ')[0]} when it was stopped." if frames else ""
        return {"message": f"did not finish within {CHECK_TIMEOUT_S} s: is there a loop that never ends?{where}",
                "frames": frames, "not_started": False}
    first = (text.splitlines()[0] if text else "(no message)")[:MESSAGE_LIMIT]
    if type(err).__name__ in ("Forbidden", "ForbiddenImport"):
        return {"message": text[:MESSAGE_LIMIT], "frames": frames, "not_started": False}
    if isinstance(err, SystemExit):
        return {"message": "your code called sys.exit() (or exit()): a function must return its result; it may "
                           "not end the program.", "frames": frames, "not_started": False}
    if isinstance(err, MemoryError) or "can't allocate memory" in first or "DefaultCPUAllocator" in first:
        return {"message": f"your code ran out of memory{memory_limit()}: is a tensor far bigger than it should "
                           f"be, or does a list keep growing? ({type(err).__name__}: {first})",
                "frames": frames, "not_started": False}
    origin = "your code raised" if frames else "the check raised"
    return {"message": f"{origin} {type(err).__name__}: {first}", "frames": frames, "not_started": False}


def memory_limit() -> str:
    import resource

    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    return "" if limit == resource.RLIM_INFINITY else f" (the grading process may use {limit / 2**30:.1f} GiB)"


class Collector:
    """A pytest plugin that sends the list of checks, then each check's result, through the channel."""

    def __init__(self, channel: Writer, folder: Path, guard: Guard | None = None):
        self.channel, self.folder, self.guard = channel, folder, guard
        self.failed_topics: set[str] = set()
        self.planned: dict[str, dict] = {}
        self.reported: set[str] = set()
        self.collect_errors = 0
        self.sticky: str | None = None  # what the learner's code did while loading: it fails every check

    @staticmethod
    def topic_of(item) -> str:
        for name in [*topic_names(), ALL]:
            if item.get_closest_marker(name):
                return name
        return "other"

    def pytest_collectreport(self, report):
        self.collect_errors += report.failed

    def pytest_collection_finish(self, session):
        # Sent before any learner code runs: the grader knows every check even if the run dies.
        plan = [{"id": item.nodeid, "topic": self.topic_of(item), "name": check_name(item)} for item in session.items]
        self.planned = {p["id"]: p for p in plan}
        self.channel.send(PLAN, {"checks": plan})

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        loading = fixturedef.argname == "submission" and self.guard is not None
        if loading:
            self.guard.activate()  # the reference is loaded; the learner's modules are next
        outcome = yield
        if loading:
            if outcome.excinfo is None:
                drop_stand_ins(PACKAGE, outcome.get_result().errors)
            violations = self.guard.take_violations()
            self.sticky = self.guard.tampering() or (guard_message(violations[0]) if violations else None)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" or (report.when == "setup" and not report.passed):
            record = {"id": item.nodeid, "topic": self.topic_of(item), "name": check_name(item),
                      "status": STATUS.get(report.outcome, "failed"), "duration": round(report.duration, 3),
                      "message": "", "frames": [], "not_started": False, "output": ""}
            if report.failed and call.excinfo is not None:
                record.update(explain(call.excinfo, self.folder))
                self.failed_topics.add(record["topic"])
            elif report.skipped and call.excinfo is not None:
                frames = learner_frames(call.excinfo.tb, self.folder)
                if frames:  # pytest.skip() or xfail() called by the learner's code: not a pass
                    record.update(status="failed", frames=frames,
                                  message="your code called pytest.skip() or pytest.xfail(): a function must return "
                                          "its result; it cannot skip the check.")
                else:
                    record["message"] = str(call.excinfo.value.msg if hasattr(call.excinfo.value, "msg") else call.excinfo.value)
            record["output"] = getattr(item, "learnkd_output", "")
            item.learnkd_record = record

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        hide_reference()
        yield
        record = getattr(item, "learnkd_record", None)
        if record is None:
            return
        if self.guard is not None:  # after teardown: a check's own monkeypatch is undone by then
            self.sticky = self.sticky or self.guard.tampering()
            violations = self.guard.take_violations()
            problem = self.sticky or (guard_message(violations[0]) if violations else None)
            if problem and (record["status"] != "failed" or "learnkd:" not in record["message"]):
                record.update(status="failed", message=problem, not_started=False)
        self.reported.add(item.nodeid)
        self.channel.send(CHECK, record)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item):
        hide_reference()  # a check may have imported the reference again
        yield

    def finish(self, code: int) -> None:
        """A failed result for each check that never ran, then the end record."""
        missing = [p for i, p in self.planned.items() if i not in self.reported]
        why = ("the checks were interrupted (KeyboardInterrupt)" if code == 2 else
               "the test session was stopped early: does your code call pytest.exit()?")
        for check in missing:
            self.channel.send(CHECK, {**check, "status": "failed", "duration": 0.0, "message": f"did not run: {why}",
                                      "frames": [], "not_started": False, "output": ""})
        self.channel.send(END, {"missing": [p["id"] for p in missing], "why": why if missing else ""})


def pytest_args(request: GradingRequest, request_file: str) -> list[str]:
    markers = [t for t in request.topics if t in topic_names()]
    if ALL in request.topics:
        markers = [*topic_names(), ALL]
    # Only the selected topics' modules: the others would cost their imports (seconds) for nothing.
    modules = [CHECKS_DIR / f"test_{'end_to_end' if m == ALL else m}.py" for m in markers]
    return [*map(str, modules), "-m", " or ".join(markers), "--learnkd-request", request_file,
            "-p", "pytest_timeout", "--timeout", str(CHECK_TIMEOUT_S), "--timeout-method", "signal",
            "-p", "no:cacheprovider", "-p", "no:randomly", "-p", "no:debugging", "-p", "no:pastebin",
            "--assert=plain", "-q", "--no-header",
            "--rootdir", str(CHECKS_DIR), "-c", str(CHECKS_DIR / "pytest.ini")]


def read_config() -> dict:
    """The run's settings, one JSON line on stdin; stdin is then closed, before any learner code runs."""
    line = sys.stdin.readline()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    return json.loads(line)


def apply_limits(config: dict) -> None:
    """Lower this process's own limits, for good (soft and hard), before any learner code runs."""
    import resource

    for limit, megabytes in ((resource.RLIMIT_AS, config.get("memory_mb")), (resource.RLIMIT_FSIZE, config.get("output_mb"))):
        if megabytes:
            value, hard = int(megabytes) * 2**20, resource.getrlimit(limit)[1]
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(limit, (value, value))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main(argv: list[str]) -> int:
    global progress_stream
    request_file = argv[0]
    config = read_config()
    apply_limits(config)
    with open(request_file) as f:
        request = GradingRequest(**json.load(f))
    progress_stream = os.fdopen(os.dup(2), "w")  # pytest captures fd 2 during checks; this copy is not
    folder = Path(request.path).resolve()
    channel = Writer(config.pop("fd"), bytes.fromhex(config.pop("key")))
    # The libraries the checks use load before the guard watches imports: under its hooks, importing
    # torch takes seconds longer, and only the imports that learner code triggers need watching.
    import torch  # noqa: F401

    if {"train", "models", ALL} & set(request.topics):  # they create optimizers, which import torch._dynamo,
        import torch._dynamo  # noqa: F401               # and that import replaces torch.manual_seed

    guard = Guard(folder, writable=config.get("writable", []), protect=config.get("protect", []))
    guard.install()
    collector = Collector(channel, folder, guard)
    code = pytest.main(pytest_args(request, request_file), plugins=[collector])
    if code in (0, 1, 5) or (code == 2 and not collector.collect_errors):
        collector.finish(int(code))
        code = 0
    channel.close()
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
