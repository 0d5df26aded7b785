"""The worker's tasks by name (``task`` registers one; ``tasks.run`` dispatches a request to it), and
``function``: a learner's function, by module and name, from the loaded submission."""

from __future__ import annotations

import sys

TASKS = {}


def task(name: str):
    def register(fn):
        TASKS[name] = fn
        return fn
    return register


def function(worker, module: str, name: str):
    fn = getattr(worker.modules.get(module) or sys.modules[f"learnkd_submission.{module}"], name)
    if not callable(fn):
        raise TypeError(f"{module}.{name} is not a function: it is {type(fn).__name__}")
    return fn
