"""Ignores SIGALRM (what the old per-check timeout used) and loops forever: only a limit outside can stop it.

says: did not finish within
"""
import signal


def soft_targets(logits, T=1.0):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    while True:
        pass


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    while True:
        pass
