"""The code a lab run trains, loaded in this process: the reference solutions, or a learner's folder
(``learnkd report``, ``learnkd experiment --path``: the learner's own code on the learner's own machine), and
whether every part of it is written."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace


class LabError(Exception):
    """The code cannot be trained: a file does not import, a part is unfinished or fails. One paragraph."""


def learner_frame(err: BaseException, folder: Path) -> str:
    """'exercises/models.py:23' for the deepest frame of ``err`` in the learner's folder, or '' (the frames as
    the worker finds them for the judge: ``grader.worker.serve.learner_frames``)."""
    from grader.lab.submission import display_path
    from grader.worker.serve import learner_frames

    frames = learner_frames(err.__traceback__, folder.resolve())
    return f"{display_path(folder / frames[-1]['file'])}:{frames[-1]['line']}" if frames else ""


def load_code(folder: Path) -> SimpleNamespace:
    """The modules of a folder laid out like exercises/; LabError when a file does not even import."""
    from grader.lab.submission import load_submission

    submission = load_submission(folder)
    if submission.errors:
        problems = "; ".join(str(e) for e in submission.errors.values())
        raise LabError(f"Your code in {folder} cannot be run: {problems}. Fix it (learnkd check tells you more), "
                         "then run this again.")
    return SimpleNamespace(models=submission.models, loss=submission.loss, train=submission.train,
                           evaluate=submission.evaluate)


def unfinished_parts(code: SimpleNamespace, folder: Path) -> tuple[list[str], str | None]:
    """Run each function of the contract once on two random images; (stubs still raising, other failure)."""
    import torch

    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    batches = [(x, y)]
    stubs, failure = [], None
    steps = [
        ("models.py: Teacher", lambda: code.models.Teacher()(x)),
        ("models.py: Student", lambda: code.models.Student()(x)),
        ("loss.py: distillation_loss", lambda: code.loss.distillation_loss(torch.randn(4, 10), torch.randn(4, 10), y)),
        ("train.py: train_model", lambda: code.train.train_model(code.models.Student(), batches, epochs=1)),
        ("train.py: distill", lambda: code.train.distill(code.models.Student(), code.models.Teacher(), batches, epochs=1)),
        ("evaluate.py: evaluate", lambda: code.evaluate.evaluate(code.models.Student(), batches)),
    ]
    for name, step in steps:
        try:
            step()
        except NotImplementedError:
            stubs.append(name)
        except Exception as err:  # the learner's bug: say where, once
            if failure is None:
                where = learner_frame(err, folder)
                failure = f"{name} raised {type(err).__name__}: {err}" + (f" (at {where})" if where else "")
    return stubs, failure


def require_finished(code: SimpleNamespace, folder: Path) -> None:
    stubs, failure = unfinished_parts(code, folder)
    if stubs:
        raise LabError(
            f"Your code in {folder} is not finished: {', '.join(stubs)} still raise NotImplementedError, the stub's "
            "placeholder. learnkd report trains your own models, so every topic must be written first: run "
            "`learnkd check` to grade the next topic, and `learnkd check all` once they pass; then run "
            "`learnkd report` again. (`learnkd reference` shows the report of the reference solutions.)")
    if failure:
        raise LabError(f"Your code in {folder} fails on two random images: {failure}. Run `learnkd check` to find "
                         "out what is wrong, then run `learnkd report` again.")


def reference_code() -> SimpleNamespace:
    from solutions import evaluate, loss, models, train

    return SimpleNamespace(models=models, loss=loss, train=train, evaluate=evaluate)
