"""What every `learnkd` command shares: exit codes, the devices, the one-paragraph UserError, and which
folder a command grades."""

from __future__ import annotations

from pathlib import Path

import click

EXIT_FAILED, EXIT_USAGE = 1, 2
DEVICES = ["cpu", "cuda", "mps"]


class UserError(click.ClickException):
    """A usage or environment problem: one paragraph, exit code 2, no traceback."""
    exit_code = EXIT_USAGE



def submission_folder(path: Path | None, solutions: bool) -> Path:
    from grader.grading import SOLUTIONS, GradingError, find_exercises

    if path and solutions:
        raise UserError("--path and --solutions both name what to grade: give one of them.")
    if solutions:
        return SOLUTIONS
    if path:
        if not path.is_dir():
            raise UserError(f"--path {path}: there is no such folder. Give a folder laid out like exercises/ "
                            f"(models.py, loss.py, train.py, evaluate.py).")
        return path.resolve()
    try:
        return find_exercises()
    except GradingError as err:
        raise UserError(str(err)) from None
