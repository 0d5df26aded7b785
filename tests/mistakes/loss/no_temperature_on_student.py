"""The student's logits are not divided by T in the soft term.

check: the gradient
says: student's logits are not divided by T
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    log_q = F.log_softmax(student_logits, dim=1)
    p = soft_targets(teacher_logits, T)
    soft = F.kl_div(log_q, p, reduction="batchmean") * T**2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
