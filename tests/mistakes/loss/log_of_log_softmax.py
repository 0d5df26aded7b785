"""torch.log of log-probabilities (which are negative): the loss is NaN for every input.

check: returns a scalar tensor that back-propagates
says: distillation_loss returned NaN (not a number) instead of a finite number
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    log_q = torch.log(F.log_softmax(student_logits / T, dim=1))  # the log taken twice
    p = F.softmax(teacher_logits / T, dim=1)
    soft = F.kl_div(log_q, p, reduction="batchmean") * T**2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
