"""Allocates more memory than the limit allows: 12 GiB that Linux would lend (untouched) without it, then 64 GiB.

says: ran out of memory
"""
import torch


def soft_targets(logits, T=1.0):
    return torch.empty(3 * 2**30).sum() + logits


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    return bytearray(2**36)
