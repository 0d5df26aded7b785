"""Grading one submission: find it, run the grading process, collect what each check found."""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import channel
from .request import GradingRequest
from .results import CheckResult
from .topics import ALL, topic_names

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
# The whole grading process: a topic's checks take seconds, `all` trains three models on MNIST.
TOPIC_TIMEOUT_S = 600
ALL_TIMEOUT_S = 1800
# Address space of the grading process (RLIMIT_AS). PyTorch's CPU build maps ~3.3 GB of virtual memory
# once imported (thread stacks, allocator arenas); the end-to-end training on all of MNIST peaks near
# 4 GB (1.1 GB resident) on 2 cores. 8 GiB leaves room for more cores and a learner's bigger models, and
# a runaway allocation (a tensor of 10**10 floats) fails at once. Not applied with --device cuda, whose
# driver maps far more address space than it uses.
MEMORY_LIMIT_MB = 8192
OUTPUT_LIMIT_MB = 256  # largest file the grading process may write (RLIMIT_FSIZE): endless prints end there
CHANNEL_LIMIT = 64 * 2**20  # bytes of results the grader reads from one run


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
    from .data import DataError, load_raw, resolve_data_dir

    root, how = resolve_data_dir(data_dir)
    try:
        for split in ("train", "test"):
            load_raw(split, root.resolve(), how)
    except DataError as err:  # already one paragraph for the user
        raise GradingError(str(err)) from None


@dataclass
class Grading:
    request: GradingRequest
    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    crash: str | None = None  # why the grading process ended early, if it did
    plan: list[dict] | None = None  # every check the run collected ({"id", "topic", "name"}), if it got that far


def crash_reason(returncode: int, results: list[CheckResult], log: str) -> str:
    last = f" after the check '{results[-1].name}'" if results else ""
    if returncode < 0:
        name = signal.Signals(-returncode).name if -returncode in signal.Signals._value2member_map_ else str(-returncode)
        what = {"SIGXFSZ": f"was stopped for writing more than {OUTPUT_LIMIT_MB} MB of output (SIGXFSZ)"}.get(
            name, f"was killed by signal {-returncode} ({name}: a crash in native code, or out of memory)")
    elif returncode == 2:
        tail = "".join(c for c in log.strip()[-800:] if c.isprintable() or c == "\n")
        return f"the checks could not start (a bug in the grader, not in your code): {tail}"
    else:
        what = f"stopped with exit code {returncode}"
    return f"the grading process {what}{last}; the checks after it did not run."


def kill_group(proc: subprocess.Popen) -> None:
    """Kill the grading process and anything it started (they share its session)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def read_all(fd: int, chunks: list[bytes]) -> None:
    """Read the results channel to its end (kept up to CHANNEL_LIMIT bytes; the rest is discarded)."""
    size = 0
    while True:
        data = os.read(fd, 65536)
        if not data:
            return
        size += len(data)
        if size <= CHANNEL_LIMIT:
            chunks.append(data)
        elif not chunks or chunks[-1] != b"\0":
            chunks.append(b"\0")  # not a valid record: the results are rejected


def run_grading(request: GradingRequest, timeout: float | None = None, memory_mb: int | None = None,
                quiet: bool = False, cwd: str | Path | None = None, writable: list | None = None,
                protect: tuple = ()) -> Grading:
    """Run the hidden checks for ``request`` in a separate process and collect their results.

    ``timeout``: seconds of wall-clock time (default by topics); ``memory_mb``: its address space (0: no
    limit); ``quiet``: its stderr (progress bars) goes to the log, not the terminal; ``cwd``: where it
    runs; ``writable``: folders the learner's code may write to besides the run's scratch folder (default:
    the working folder); ``protect``: folders the learner's code may not read (other submissions).
    """
    selected = request.topics
    timeout = timeout or (ALL_TIMEOUT_S if ALL in selected else TOPIC_TIMEOUT_S)
    memory_mb = MEMORY_LIMIT_MB if memory_mb is None else memory_mb
    if request.device == "cuda":
        memory_mb = 0
    grading = Grading(request)
    with tempfile.TemporaryDirectory(prefix="learnkd-") as tmp:
        request_file, log_file, scratch = (Path(tmp) / n for n in ("request.json", "log.txt", "scratch"))
        scratch.mkdir()
        request_file.write_text(json.dumps(request.to_dict()))
        key = secrets.token_bytes(32)
        read_fd, write_fd = os.pipe()
        writable = [str(Path(cwd or Path.cwd()).resolve())] if writable is None else [str(w) for w in writable]
        config = {"fd": write_fd, "key": key.hex(), "memory_mb": memory_mb, "output_mb": OUTPUT_LIMIT_MB,
                  "writable": [str(scratch), *writable], "protect": [str(p) for p in protect]}
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1", TMPDIR=str(scratch),
                   MPLCONFIGDIR=str(scratch))  # matplotlib's cache: the learner's code may write nowhere else
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
        chunks: list[bytes] = []
        reader = threading.Thread(target=read_all, args=(read_fd, chunks), daemon=True)
        reader.start()
        start = time.perf_counter()
        with open(log_file, "w") as log:
            # The limits travel with the settings: the runner sets them on itself before any learner code
            # runs (a preexec_fn is not safe while `learnkd grade --jobs` starts processes from threads).
            proc = subprocess.Popen([sys.executable, "-m", "grader.runner", str(request_file)], cwd=cwd,
                                    stdin=subprocess.PIPE, stdout=log, stderr=log if quiet else None, env=env,
                                    pass_fds=(write_fd,), start_new_session=True)
            os.close(write_fd)
            try:
                proc.stdin.write(json.dumps(config).encode() + b"\n")
                proc.stdin.close()
            except BrokenPipeError:
                pass
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
            finally:
                kill_group(proc)
                proc.wait()
        grading.seconds = time.perf_counter() - start
        reader.join(timeout=10)
        os.close(read_fd)
        received = channel.read(b"".join(chunks), key)
        grading.plan = received.plan
        grading.results = [CheckResult(**r) for r in received.checks]
        if received.forged:
            grading.results = []
            grading.crash = (f"{received.forged}: something other than the grader (your code?) wrote to its "
                             "results channel, so none of the results can be trusted and every check counts as failed.")
        elif code is None:
            grading.crash = f"grading took longer than {timeout:.0f} s and was stopped."
        elif code != 0:
            grading.crash = crash_reason(code, grading.results, log_file.read_text(errors="replace"))
        elif received.end is None:
            last = f" after the check '{grading.results[-1].name}'" if grading.results else ""
            grading.crash = (f"the grading process ended{last} before its checks finished, with exit code 0: does "
                             "your code call os._exit()? A function must return its result.")
        elif received.end.get("missing"):
            grading.crash = f"{len(received.end['missing'])} checks did not run: {received.end['why']}"
    if grading.crash:
        grading.results += unfinished(grading)
    return grading


def unfinished(grading: Grading) -> list[CheckResult]:
    """A failed result for each check that did not report, or for each topic left with none when the
    grading process died before it listed its checks."""
    seen_ids = {r.id for r in grading.results}
    if grading.plan:
        return [CheckResult(id=p["id"], topic=p["topic"], name=p["name"], status="failed", message=grading.crash)
                for p in grading.plan if p["id"] not in seen_ids]
    topics = topic_names() + [ALL] if ALL in grading.request.topics else grading.request.topics
    seen = {r.topic for r in grading.results}
    return [CheckResult(id=f"{t}::unfinished", topic=t, name="the checks ran to the end", status="failed",
                        message=grading.crash) for t in topics if t not in seen]
