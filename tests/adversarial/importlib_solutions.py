"""Imports the reference with importlib.import_module under a built-up name (the static check cannot see it).

says: No module named 'solutions'
"""
import importlib


def _reference():
    return importlib.import_module("solu" + "tions.loss")


def soft_targets(logits, T=1.0):
    return _reference().soft_targets(logits, T)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    return _reference().distillation_loss(student_logits, teacher_logits, labels, T, alpha)
