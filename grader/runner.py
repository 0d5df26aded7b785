"""The grading process: runs the hidden checks on one submission and writes what each one found.

Started by the CLI as ``python -m grader.runner REQUEST.json RESULTS.jsonl``, in a process of its own
so that learner code that crashes, hangs or calls ``sys.exit`` cannot take the CLI (or the progress
file) with it. One JSON line per check is written as soon as the check ends, so a crash loses only
the check that was running.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from pathlib import Path

import pytest

from .checking import CheckFailed
from .request import GradingRequest
from .submission import display_path
from .topics import ALL, topic_names

CHECKS_DIR = Path(__file__).resolve().parent / "checks"
CHECK_TIMEOUT_S = 30  # one check; generous for 2 slow cores, short enough that a hang costs little
STATUS = {"passed": "passed", "failed": "failed", "skipped": "skipped"}

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
    origin = "your code raised" if frames else "the check raised"
    return {"message": f"{origin} {type(err).__name__}: {text.splitlines()[0] if text else '(no message)'}",
            "frames": frames, "not_started": False}


class Collector:
    """A pytest plugin that writes one JSON line per check to ``out``."""

    def __init__(self, out, folder: Path):
        self.out, self.folder = out, folder
        self.failed_topics: set[str] = set()

    @staticmethod
    def topic_of(item) -> str:
        for name in [*topic_names(), ALL]:
            if item.get_closest_marker(name):
                return name
        return "other"

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
                record["message"] = str(call.excinfo.value.msg if hasattr(call.excinfo.value, "msg") else call.excinfo.value)
            record["output"] = getattr(item, "learnkd_output", "")
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()


def pytest_args(request: GradingRequest, request_file: str) -> list[str]:
    markers = [t for t in request.topics if t in topic_names()]
    if ALL in request.topics:
        markers = [*topic_names(), ALL]
    return [str(CHECKS_DIR), "-m", " or ".join(markers), "--learnkd-request", request_file,
            "-p", "pytest_timeout", "--timeout", str(CHECK_TIMEOUT_S), "--timeout-method", "signal",
            "-p", "no:cacheprovider", "-p", "no:randomly", "--assert=plain", "-q", "--no-header",
            "--rootdir", str(CHECKS_DIR), "-c", str(CHECKS_DIR / "pytest.ini")]


def main(argv: list[str]) -> int:
    global progress_stream
    request_file, results_file = argv
    with open(request_file) as f:
        request = GradingRequest(**json.load(f))
    progress_stream = os.fdopen(os.dup(2), "w")  # pytest captures fd 2 during checks; this copy is not
    folder = Path(request.path).resolve()
    with open(results_file, "w") as out:
        collector = Collector(out, folder)
        code = pytest.main(pytest_args(request, request_file), plugins=[collector])
    return 0 if code in (0, 1, 5) else int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
