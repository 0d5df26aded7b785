"""The learner's submission as the judge's checks see it: modules and functions that run in the worker.

``submission.loss.distillation_loss(s, t, y, T=2.0)`` sends the call to the worker and returns the
decoded reply: plain Python values, plain ``torch.Tensor``s and ``wire.Opaque`` descriptions of
anything else. ``.call(...)`` gives the whole reply (a gradient, the arguments after the call).
A file that failed to load fails every check that asks for it, with its error. When a function ran
past the time limit once, later calls of it fail at once with the same error.
"""

from __future__ import annotations

from pathlib import Path

from grader.grading.checking import CheckFailed
from grader.grading.worker_process import LearnerError, WorkerGone, WorkerProcess


# The file a request's code comes from, by the request's first word (grader/worker/tasks.py).
OP_FILES = {"model": "models", "evaluate": "evaluate", "train": "train"}


class Remote:
    """The submission: ``submission.<stem>`` is a RemoteModule, or a CheckFailed with the file's load error."""

    def __init__(self, process: WorkerProcess, timeout: float):
        self.process, self.timeout = process, timeout
        self.timed_out: dict[str, WorkerGone] = {}

    @property
    def errors(self) -> dict[str, dict]:
        return dict(self.process.ready().get("errors") or {})

    def load_error(self, stem: str) -> str | None:
        from grader.grading import session  # the run's request, set by the judge

        note = (session.request.notes if session.request else {}).get(f"{stem}.py")
        if note:
            return f"{stem}.py {note}"
        error = self.errors.get(stem)
        if not isinstance(error, dict):
            return None
        from grader.lab.submission import display_path

        folder = (session.request.display or session.request.path) if session.request else "."
        file = display_path(Path(folder) / Path(str(error.get("file"))).name)
        where = f"{file}:{error.get('line')}" if type(error.get("line")) is int else file
        return f"{where}: {str(error.get('message'))[:2000]}"

    def __getattr__(self, stem: str) -> "RemoteModule":
        if stem.startswith("_"):
            raise AttributeError(stem)
        problem = self.load_error(stem)
        if problem:
            raise CheckFailed(problem)
        return RemoteModule(self, stem)

    def ask(self, message: dict, key: str | None = None, timeout: float | None = None):
        """One request to the worker, under this run's per-request time limit; a request that needs a file
        that failed to load fails with that file's error."""
        if key and key in self.timed_out:
            raise self.timed_out[key]
        op = str(message.get("op", ""))
        stem = message.get("module") if op == "call" else OP_FILES.get(op.split(".")[0])
        problem = self.load_error(stem) if isinstance(stem, str) else None
        if problem:
            raise CheckFailed(problem)
        try:
            return self.process.request(message, timeout or self.timeout)
        except WorkerGone as err:
            if err.timeout and key:
                self.timed_out[key] = err
            raise


class RemoteModule:
    def __init__(self, remote: Remote, stem: str):
        self.remote, self.stem = remote, stem

    def __getattr__(self, name: str) -> "RemoteFunction":
        if name.startswith("_"):
            raise AttributeError(name)
        return RemoteFunction(self.remote, self.stem, name)


class RemoteFunction:
    """A learner's function; calling it runs it in the worker on copies of the arguments."""

    def __init__(self, remote: Remote, module: str, name: str):
        self.remote, self.module, self.name = remote, module, name

    def __repr__(self) -> str:
        return f"<the learner's {self.module}.{self.name}>"

    def __eq__(self, other) -> bool:
        return isinstance(other, RemoteFunction) and (self.remote, self.module, self.name) == (
            other.remote, other.module, other.name)

    def __hash__(self) -> int:
        return hash((id(self.remote), self.module, self.name))

    def call(self, *args, grad_of: int | None = None, return_args: bool = False, **kwargs) -> dict:
        message = {"op": "call", "module": self.module, "name": self.name, "args": list(args), "kwargs": kwargs,
                   "grad_of": grad_of, "return_args": return_args}
        reply = self.remote.ask(message, key=f"{self.module}.{self.name}")
        if not isinstance(reply, dict):
            raise WorkerGone("the worker's reply is not what was asked for")
        return reply

    def __call__(self, *args, **kwargs):
        return self.call(*args, **kwargs).get("value")


__all__ = ["Remote", "RemoteModule", "RemoteFunction", "LearnerError", "WorkerGone"]
