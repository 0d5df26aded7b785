"""F.kl_div gets the student's probabilities where it wants log-probabilities.

check: with alpha=1 it is 0
says: must be log-probabilities
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    student_soft = soft_targets(student_logits, T)
    teacher_soft = soft_targets(teacher_logits, T)
    soft = F.kl_div(student_soft, teacher_soft, reduction="batchmean") * T**2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
