"""The worker's main loop: import the submission, then run its functions whenever the judge asks.

Started by the judge (``grader.grading.worker_process``) inside the sandbox, as

    python -I -c "import sys; sys.path.insert(0, DIR); from learnkd_worker.serve import main; main()"

It takes its requests from stdin and sends its replies on the stdout it had at start; before any
learner code runs it points its own file descriptor 1 at stderr (a learner's print() cannot reach the
judge), lowers its resource limits for good, and reads its settings from the first request.
Everything it sends is plain data (``wire``); the judge trusts none of it beyond what it checks.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from types import ModuleType

from . import wire

PACKAGE = "learnkd_submission"
FILES = ("models.py", "loss.py", "train.py", "evaluate.py")  # in course order: a later file may import an earlier one
# A submission may not import these: the reference answers, the grader, or this worker.
FORBIDDEN_IMPORTS = ("solutions", "grader", "learnkd_submission", "learnkd_worker")
MESSAGE_LIMIT = 2000  # characters of a learner's exception message that a reply keeps


class Worker:
    """The connection to the judge and the loaded submission."""

    def __init__(self, fd_in: int, fd_out: int):
        self.fd_in, self.fd_out = fd_in, fd_out
        self.folder = Path.cwd()
        self.modules: dict[str, ModuleType] = {}
        self.errors: dict[str, dict] = {}
        self.models: dict = {}  # models trained by one request and kept for the next, by the judge's name

    def callback(self, name: str, **payload):
        """Ask the judge for something in the middle of a request (e.g. the reference loss of a batch)."""
        wire.send(self.fd_out, {"callback": name, **payload})
        reply = wire.receive(self.fd_in)
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply["ok"]


# ---------------------------------------------------------------------------------------------------
# Loading the submission


def forbidden_import(source: str, filename: str) -> dict | None:
    """The first import of the reference or the grader in ``source``, if any."""
    try:
        tree = ast.parse(source, filename)
    except (SyntaxError, ValueError):
        return None  # reported by the import itself, with its line
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in FORBIDDEN_IMPORTS:
                return {"file": filename, "line": node.lineno,
                        "message": f"imports '{name}'. A submission must be your own work: it may not import "
                                   "the reference solutions or the grader. Remove this import."}
    return None


def learner_frames(tb, folder: Path) -> list[dict]:
    """Each frame of ``tb`` in a file of the learner's folder (``folder``: resolved), outermost first: file name,
    line, function, source line."""
    frames = []
    for frame in traceback.extract_tb(tb):
        path = Path(frame.filename)
        if path.parent == folder and path.suffix == ".py":
            frames.append({"file": path.name, "line": frame.lineno, "name": str(frame.name),
                           "text": (frame.line or "").strip()[:300]})
    return frames


def safe_text(err: BaseException) -> str:
    try:
        return str(err)[:MESSAGE_LIMIT]
    except BaseException:
        return "(the error's message could not be read)"


def load_error(err: BaseException, folder: Path, filename: str) -> dict:
    if isinstance(err, SyntaxError) and err.filename and Path(err.filename).name.endswith(".py"):
        text = (err.text or "").strip()
        detail = f" in: {text}" if text else ""
        return {"file": Path(err.filename).name, "line": err.lineno, "message": f"{type(err).__name__}: {err.msg}{detail}"}
    line, file = None, filename
    for frame in learner_frames(err.__traceback__, folder):
        file, line = frame["file"], frame["line"]
    return {"file": file, "line": line, "message": f"importing it failed with {type(err).__name__}: {safe_text(err)}"}


def stand_in(name: str, stem: str, problem: dict) -> ModuleType:
    """A module for a file that failed to load: any name taken from it is a function that says so."""
    module = ModuleType(f"{name}.{stem}")

    def missing(attr):
        def failed(*args, **kwargs):
            raise RuntimeError(f"{stem}.py could not be loaded, so {attr} cannot run: {problem['message']}")
        failed.__name__ = attr
        return failed

    module.__getattr__ = missing
    return module


def load_submission(worker: Worker, folder: Path, name: str = PACKAGE) -> None:
    """Import every exercise file of ``folder`` as ``<name>.<stem>``, recording the ones that fail."""
    package = importlib.util.module_from_spec(importlib.util.spec_from_loader(name, loader=None, is_package=True))
    package.__path__ = [str(folder)]
    sys.modules[name] = package
    for filename in FILES:
        stem = filename.removesuffix(".py")
        path = folder / filename
        if not path.is_file():
            problem = {"file": filename, "line": None, "message": f"is missing: the folder must hold {filename}, "
                                                                    "as exercises/ does."}
        else:
            problem = forbidden_import(path.read_text(errors="replace"), filename)
            if problem is None:
                try:
                    worker.modules[stem] = importlib.import_module(f"{name}.{stem}")
                    continue
                except BaseException as err:  # a learner's module can raise anything, SystemExit too
                    sys.modules.pop(f"{name}.{stem}", None)
                    problem = load_error(err, folder, filename)
        worker.errors[stem] = problem
        sys.modules[f"{name}.{stem}"] = stand_in(name, stem, problem)
        setattr(package, stem, sys.modules[f"{name}.{stem}"])


# ---------------------------------------------------------------------------------------------------
# Errors


def runaway_loop() -> type:
    from .tracing import RunawayLoop  # loaded with the tasks: it needs torch, which start-up does not load

    return RunawayLoop


def error_record(err: BaseException, folder: Path) -> dict:
    """What went wrong in a request, as plain data: the exception's type and text, the learner's frames."""
    text = safe_text(err)
    kind = "error"
    if isinstance(err, NotImplementedError):
        kind = "not_implemented"
    elif isinstance(err, SystemExit):
        kind = "exit"
    elif isinstance(err, MemoryError) or "can't allocate memory" in text or "DefaultCPUAllocator" in text:
        kind = "memory"
    elif isinstance(err, KeyboardInterrupt):
        kind = "interrupted"
    elif isinstance(err, runaway_loop()):
        kind = "runaway"
    return {"type": type(err).__name__, "message": text, "frames": learner_frames(err.__traceback__, folder),
            "kind": kind}


# ---------------------------------------------------------------------------------------------------
# Start-up


def apply_limits(settings: dict) -> None:
    """Lower this process's limits for good (soft and hard), before any learner code runs."""
    import resource

    wanted = {resource.RLIMIT_AS: settings.get("memory_mb") and settings["memory_mb"] * 2**20,
              resource.RLIMIT_FSIZE: settings.get("output_mb") and settings["output_mb"] * 2**20,
              resource.RLIMIT_CPU: settings.get("cpu_s"),
              resource.RLIMIT_NPROC: settings.get("processes"),
              resource.RLIMIT_CORE: 0}
    for limit, value in wanted.items():
        if value is None or value is False:
            continue
        hard = resource.getrlimit(limit)[1]
        value = int(value) if hard == resource.RLIM_INFINITY else min(int(value), hard)
        try:
            resource.setrlimit(limit, (value, value))
        except (ValueError, OSError):
            pass


def copy_tree(source: Path, target: Path) -> None:
    """The handed-in files (read-only here) into the writable folder the learner's code runs in."""
    import shutil

    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if path.is_dir() and not path.is_symlink():
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif path.is_file() and not path.is_symlink():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative)


def write_files(files: list, target: Path) -> None:
    """The files a forked worker is sent ([relative path, uint8 tensor]) into the folder the learner's code runs in."""
    for relative, content in files:
        parts = Path(relative).parts
        if not parts or Path(relative).is_absolute() or ".." in parts:
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        (target / relative).write_bytes(content.numpy().tobytes())


def main() -> None:
    fd_in, fd_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(2, 1)  # the learner's print() goes to stderr, never to the judge
    os.close(null)
    sys.stdout = sys.stderr
    import torch

    from . import tasks

    worker = Worker(fd_in, fd_out)
    settings = wire.receive(fd_in)
    apply_limits(settings)
    import faulthandler
    import signal

    # When the judge stops a request that runs too long, it asks where the code is (SIGUSR1): the stack goes
    # to the reply pipe, which the judge reads once more before it ends this process.
    faulthandler.register(signal.SIGUSR1, file=fd_out, all_threads=False)
    if settings.get("copy_from"):  # the sandbox's /submission is its own, in memory: fill it with the copy
        copy_tree(Path(settings["copy_from"]), Path(settings.get("folder", ".")))
    if settings.get("files"):  # a worker forked by the zygote (zygote.py), which has no view of the copy
        write_files(settings["files"], Path(settings.get("folder", ".")))
    torch.set_num_threads(max(1, int(settings.get("threads", 1))))
    worker.folder = Path(settings.get("folder", ".")).resolve()
    sys.dont_write_bytecode = True
    load_submission(worker, worker.folder)
    wire.send(fd_out, {"ok": {"errors": worker.errors, "modules": sorted(worker.modules)}})
    while True:
        try:
            request = wire.receive(fd_in)
        except EOFError:
            return
        try:
            reply = {"ok": tasks.run(worker, request)}
        except BaseException as err:  # the learner's code may raise anything
            reply = {"error": error_record(err, worker.folder)}
        try:
            wire.send(fd_out, reply)
        except BaseException as err:  # an unencodable reply is an error too
            wire.send(fd_out, {"error": error_record(err, worker.folder)})
