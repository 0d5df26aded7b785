"""Grading one submission: find it, run the grading process, collect what each check found."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from .request import GradingRequest
from .results import CheckResult, read_results
from .topics import ALL, topic_names

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
# The whole grading process: a topic's checks take seconds, `all` trains three models on MNIST.
TOPIC_TIMEOUT_S = 600
ALL_TIMEOUT_S = 1800


class GradingError(Exception):
    """The submission or the environment cannot be graded; one paragraph saying how to fix it."""


def find_exercises(cwd: Path | None = None) -> Path:
    """The learner's exercises folder: ./exercises if it is there, else the installed package's."""
    local = (cwd or Path.cwd()) / "exercises"
    if (local / "models.py").is_file():
        return local.resolve()
    spec = importlib.util.find_spec("exercises")
    if spec and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0]).resolve()
    raise GradingError("No exercises folder was found: there is no ./exercises here and no installed "
                       "'exercises' package. Run learnkd from the folder of your learnkd clone (the one "
                       "holding exercises/), or pass --path DIR for a folder laid out like exercises/.")


def project_of(folder: Path) -> Path:
    """Where a submission's progress is kept: the folder that holds it."""
    return folder.resolve().parent


def check_device(device: str) -> None:
    if device == "cpu":
        return
    import torch

    available = torch.cuda.is_available() if device == "cuda" else torch.backends.mps.is_available()
    if not available:
        raise GradingError(f"--device {device} was asked for, but PyTorch {torch.__version__} sees no "
                           f"{device.upper()} device on this machine. Leave --device out to use the CPU.")


def check_data(data_dir: str | None) -> None:
    """Read MNIST once here, so that missing or corrupt data is an error before any training starts."""
    from .data import load_raw, resolve_data_dir

    root, how = resolve_data_dir(data_dir)
    for split in ("train", "test"):
        load_raw(split, root.resolve(), how)


@dataclass
class Grading:
    request: GradingRequest
    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    crash: str | None = None  # why the grading process ended early, if it did


def crash_reason(returncode: int, results: list[CheckResult], log: str) -> str:
    last = f" after the check '{results[-1].name}'" if results else ""
    if returncode < 0:
        what = f"was killed by signal {-returncode} (a crash in native code, or out of memory)"
    elif returncode == 2:
        return f"the checks could not start (a bug in the grader, not in your code): {log.strip()[-800:]}"
    else:
        what = f"stopped with exit code {returncode}"
    return f"the grading process {what}{last}; the checks after it did not run."


def run_grading(request: GradingRequest, timeout: float | None = None) -> Grading:
    """Run the hidden checks for ``request`` in a separate process and collect their results."""
    selected = request.topics
    timeout = timeout or (ALL_TIMEOUT_S if ALL in selected else TOPIC_TIMEOUT_S)
    grading = Grading(request)
    with tempfile.TemporaryDirectory(prefix="learnkd-") as tmp:
        request_file, results_file, log_file = (Path(tmp) / n for n in ("request.json", "results.jsonl", "log.txt"))
        request_file.write_text(json.dumps(request.to_dict()))
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        start = time.perf_counter()
        with open(log_file, "w") as log:
            try:
                proc = subprocess.run([sys.executable, "-m", "grader.runner", str(request_file), str(results_file)],
                                      stdout=log, stderr=None, stdin=subprocess.DEVNULL, env=env, timeout=timeout)
                code = proc.returncode
            except subprocess.TimeoutExpired:
                code = None
        grading.seconds = time.perf_counter() - start
        grading.results = read_results(results_file)
        if code is None:
            grading.crash = f"grading took longer than {timeout:.0f} s and was stopped."
        elif code != 0:
            grading.crash = crash_reason(code, grading.results, log_file.read_text())
    if grading.crash:
        grading.results += unfinished(grading)
    return grading


def unfinished(grading: Grading) -> list[CheckResult]:
    """A failed result for each selected topic that the grading process left with no result."""
    topics = topic_names() + [ALL] if ALL in grading.request.topics else grading.request.topics
    seen = {r.topic for r in grading.results}
    return [CheckResult(id=f"{t}::unfinished", topic=t, name="the checks ran to the end", status="failed",
                        message=grading.crash) for t in topics if t not in seen]
