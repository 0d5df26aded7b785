"""Grading one submission, the one flow every way of grading goes through.

``run_grading`` copies the submission's regular files into a private folder, starts the judge
(``python -m grader.grading.judge``), which starts the worker in the sandbox, and collects what each
check found. `learnkd check` (folders and notebooks), `learnkd grade` and Gradescope's run_autograder
all call it; the trust boundary (judge here, learner code in the sandbox) is written once, here.
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from grader.grading.results import CheckResult
from grader.course.topics import ALL, topic_names, trains
from grader.grading import channel, sandbox
from grader.grading.forkserver import Judges, ServerGone
from grader.grading.request import GradingRequest
from grader.lab.cores import wait_asleep

ROOT = Path(__file__).resolve().parent.parent.parent
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
    """Check MNIST's files here (downloading them when missing), so that missing or corrupt data is an error
    before any training starts; without PyTorch when they are there (the judge loads it; a download needs it)."""
    from grader.lab.data import DataError, check_split, resolve_data_dir

    root, how = resolve_data_dir(data_dir)
    try:
        for split in ("train", "test"):
            check_split(split, root.resolve(), how)
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


# A submission's copy: enough for any honest hand-in (four files and helpers), not for a disk bomb.
COPY_FILES, COPY_BYTES = 1000, 64 * 2**20


def copy_submission(source: Path, target: Path) -> dict[str, str]:
    """Copy the regular files of ``source`` into ``target``; links are left out (one could point at the
    reference) and named, by file, in the notes returned."""
    notes, count, size = {}, 0, 0
    target.mkdir(parents=True)
    for path in sorted(Path(source).rglob("*")) if Path(source).is_dir() else []:
        relative = path.relative_to(source)
        if "__pycache__" in relative.parts or any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_symlink():
            notes[relative.as_posix()] = ("is a symbolic link, which learnkd does not follow (it could point at "
                                          "someone else's file): hand in the file itself.")
            continue
        if path.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            count, size = count + 1, size + path.stat().st_size
            if count > COPY_FILES or size > COPY_BYTES:
                raise GradingError(f"{source} holds more than {COPY_FILES} files or {COPY_BYTES // 2**20} MB: hand in "
                                   "the exercise files (models.py, loss.py, train.py, evaluate.py) and what they import.")
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative)
    for dirpath, dirnames, filenames in os.walk(target):
        os.chmod(dirpath, 0o777)  # the worker's user in the sandbox may write beside its files
        for name in filenames:
            os.chmod(os.path.join(dirpath, name), 0o666)
    return notes


def judge_environment() -> dict:
    """The judge's environment: this one, with the grader importable, no pytest plugins from elsewhere, and
    OpenMP's threads asleep while they wait (``grader.lab.cores.wait_asleep``)."""
    env = wait_asleep(dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1"))
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def run_grading(request: GradingRequest, timeout: float | None = None, memory_mb: int | None = None,
                quiet: bool = False, sandbox_kind: str | None = None, threads: int | None = None,
                judges: Judges | None = None) -> Grading:
    """Run the hidden checks for ``request`` and collect their results.

    ``timeout``: seconds of wall-clock time for the whole run (default by topics); ``memory_mb``: the
    worker's address space (0: no limit); ``quiet``: progress and the learner's output go to a log, not the
    terminal; ``sandbox_kind``: "bwrap", "unshare" or "none" (default: the best that works here);
    ``threads``: torch threads of the worker (default: every core for the end-to-end training, else one:
    the topic checks work on tiny tensors, where threads wait on each other longer than they compute);
    ``judges``: a fork server that starts the judge with PyTorch and the checks already loaded (``warm_judges``:
    a batch's gradings, or `learnkd watch`'s checks, share one), else the judge starts as a process of its own.
    """
    selected = request.topics
    timeout = timeout or (ALL_TIMEOUT_S if ALL in selected else TOPIC_TIMEOUT_S)
    memory_mb = MEMORY_LIMIT_MB if memory_mb is None else memory_mb
    if request.device == "cuda":
        memory_mb = 0
    kind = sandbox_kind or sandbox.kind()
    threads = threads or ((os.cpu_count() or 1) if ALL in selected else 1)
    grading = Grading(request)
    tmp = Path(tempfile.mkdtemp(prefix="learnkd-"))
    try:
        os.chmod(tmp, 0o711)
        copy = tmp / "submission"
        notes = copy_submission(Path(request.path), copy)
        private = GradingRequest(**{**request.to_dict(), "path": str(copy),
                                    "display": request.display or str(Path(request.path).resolve())})
        request_file, log_file = tmp / "request.json", tmp / "log.txt"
        private.notes = notes
        request_file.write_text(json.dumps(private.to_dict()))
        key = secrets.token_bytes(32)
        read_fd, write_fd = os.pipe()
        config = {"fd": write_fd, "key": key.hex(), "memory_mb": memory_mb, "output_mb": OUTPUT_LIMIT_MB,
                  "cpu_s": int(timeout * max(1, threads)) + 60, "sandbox": kind, "threads": threads,
                  "worker_log": str(log_file) if quiet else None,
                  # progress bars only on a terminal: a pipe, a log or --json output stays clean
                  "progress": not quiet and sys.stderr.isatty()}
        chunks: list[bytes] = []
        reader = threading.Thread(target=read_all, args=(read_fd, chunks), daemon=True)
        reader.start()
        start = time.perf_counter()
        with open(log_file, "a") as log:
            proc = None
            if judges is not None:
                stderr = log.fileno() if quiet else 2  # as a judge process of its own has it: the log, or ours
                try:
                    proc = judges.start([str(request_file)], config, write_fd, log.fileno(), stderr)
                except ServerGone:
                    proc = None  # started the usual way below
            if proc is None:
                proc = subprocess.Popen([sys.executable, "-m", "grader.grading.judge", str(request_file)],
                                        stdin=subprocess.PIPE, stdout=log, stderr=log if quiet else None,
                                        env=judge_environment(), pass_fds=(write_fd,), start_new_session=True)
                try:
                    proc.stdin.write(json.dumps(config).encode() + b"\n")
                    proc.stdin.close()
                except BrokenPipeError:
                    pass
            os.close(write_fd)
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                code = None
            except KeyboardInterrupt:
                kill_group(proc)
                raise
            finally:
                kill_group(proc)  # the judge, and the worker it started (same process group)
                proc.wait()
        grading.seconds = time.perf_counter() - start
        reader.join(timeout=10)
        os.close(read_fd)
        received = channel.read(b"".join(chunks), key)
        grading.plan = received.plan
        grading.results = [CheckResult(**r) for r in received.checks]
        if received.forged:
            grading.results = []
            grading.crash = f"{received.forged}: the judge's results were damaged, so every check counts as failed."
        elif code is None:
            grading.crash = f"grading took longer than {timeout:.0f} s and was stopped."
        elif code != 0:
            grading.crash = crash_reason(code, grading.results, log_file.read_text(errors="replace"))
        elif received.end is None:
            grading.crash = "the judge ended before its checks finished (a bug in the grader, not in your code)."
        elif received.end.get("missing"):
            grading.crash = f"{len(received.end['missing'])} checks did not run: {received.end['why']}"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    if grading.crash:
        grading.results += unfinished(grading)
    return grading


@contextmanager
def warm_judges(kind: str, device: str = "cpu", topics: list[str] | None = None):
    """For gradings one after another or side by side (`learnkd grade`'s batch, `learnkd watch`'s checks): a fork
    server of judges (``Judges``) and, with bubblewrap on the CPU, the zygote their workers are forked from
    (``grader.grading.zygote``), each loading PyTorch once. ``topics``: those the gradings will check (None: any),
    which say whether the workers will train. Yields the Judges to pass to ``run_grading``, or None when no fork
    server could start (each judge then starts as a process of its own); ends both."""
    from grader.grading.worker_process import WorkerGone, worker_user
    from grader.grading.zygote import Zygote, ZygoteGone

    judges = zygote = None
    if kind == sandbox.BWRAP and device == "cpu":
        try:
            zygote = Zygote(worker_user(), training=topics is None or any(trains(t) for t in topics))
        except (ZygoteGone, WorkerGone, OSError):  # each worker starts in a sandbox of its own
            pass
    try:
        try:
            judges = Judges(judge_environment(), zygote.fd if zygote is not None else None)
        except OSError:  # no fork server: each judge starts as a process of its own
            pass
        yield judges
    finally:
        if judges is not None:
            judges.close()
        if zygote is not None:
            zygote.close()


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
