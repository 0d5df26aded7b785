"""The temperature is hard-coded to 2 inside the function, so T is ignored.

check: matches the reference
says: T argument is ignored
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


TEMPERATURE = 2.0


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    log_q = F.log_softmax(student_logits / TEMPERATURE, dim=1)
    p = F.softmax(teacher_logits / TEMPERATURE, dim=1)
    soft = F.kl_div(log_q, p, reduction="batchmean") * TEMPERATURE**2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
