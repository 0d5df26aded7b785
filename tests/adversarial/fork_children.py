"""Forks 20 children in sessions of their own that spin for two minutes, to be left behind when grading ends
(a fork bomb, bounded so that it harms nothing if it is ever run without a sandbox).
"""
import os
import time

CHILDREN, LIFETIME_S = 20, 120


def spawn():
    for _ in range(CHILDREN):
        try:
            pid = os.fork()
        except OSError:
            return
        if pid == 0:
            os.setsid()
            end = time.monotonic() + LIFETIME_S
            while time.monotonic() < end:
                time.sleep(0.1)
            os._exit(0)


spawn()


def soft_targets(logits, T=1.0):
    raise NotImplementedError("loss: write soft_targets in exercises/loss.py (stuck? learnkd hint loss)")


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    raise NotImplementedError("loss: write distillation_loss in exercises/loss.py (stuck? learnkd hint loss)")
