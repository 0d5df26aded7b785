"""The soft term is scaled by T, not T**2.

check: matches the reference
says: multiplied by T instead of T**2
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    log_q = F.log_softmax(student_logits / T, dim=1)
    p = F.softmax(teacher_logits / T, dim=1)
    soft = F.kl_div(log_q, p, reduction="batchmean") * T  # scale by the temperature
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
