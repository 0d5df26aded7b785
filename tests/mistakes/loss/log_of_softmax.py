"""torch.log(F.softmax(...)): -inf for confident logits.

check: confident logits
says: F.log_softmax
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    q = F.softmax(student_logits / T, dim=1)
    p = F.softmax(teacher_logits / T, dim=1)
    kl = (p * (torch.log(p) - torch.log(q))).sum(dim=1).mean()
    return alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(student_logits, labels)
