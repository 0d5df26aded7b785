"""Rewrites the grader's status table through sys.modules["__main__"] so that failed checks count as passed.

The grading process once ran the checks and the learner's code in one interpreter, whose __main__ held
STATUS; this replaces loss.py as a student would, and also rewrites any STATUS table any module holds.
The worker's __main__ is its own bootstrap: there is no table to rewrite, and the scores come from the judge.
"""
import sys

import torch

try:
    sys.modules["__main__"].STATUS.update(failed="passed", skipped="passed")
except Exception:
    pass
for _module in list(sys.modules.values()):
    _table = getattr(_module, "STATUS", None)
    if isinstance(_table, dict):
        _table.update(failed="passed", skipped="passed")


def soft_targets(logits, T=1.0):
    logits.data.zero_()  # changes its input in place, and returns NaN: every check fails on its merits
    return torch.full_like(logits, float("nan"))


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    student_logits.data.zero_()
    return torch.full((), float("nan"), requires_grad=True)
