"""Loops forever after turning off pytest-timeout's alarm signal, so only the wall-clock limit can stop it.

says: longer than
crash: yes
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
