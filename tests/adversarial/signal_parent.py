"""Signals the process that started it (SIGSTOP then SIGCONT: the grader freezes if it got through) and starts
a program, then returns wrong values.
"""
import os
import signal
import subprocess

import torch


def soft_targets(logits, T=1.0):
    for sig in (signal.SIGSTOP, signal.SIGCONT):
        try:
            os.kill(os.getppid(), sig)
        except OSError:
            pass
    logits.data.zero_()
    return torch.full_like(logits, float("nan"))


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    subprocess.run(["true"])
    student_logits.data.zero_()
    return torch.full((), float("nan"), requires_grad=True)
