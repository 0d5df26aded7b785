"""Registers an atexit handler that never returns (and ignores SIGTERM), so that the process running it
cannot end by itself once the checks are done; its functions return wrong values.
"""
import atexit
import signal

import torch


def _forever():
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    while True:
        pass


atexit.register(_forever)


def soft_targets(logits, T=1.0):
    logits.data.zero_()
    return torch.full_like(logits, float("nan"))


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    student_logits.data.zero_()
    return torch.full((), float("nan"), requires_grad=True)
