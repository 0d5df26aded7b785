"""soft_targets exponentiates without subtracting the maximum: inf/inf = NaN for confident logits.

check: soft_targets stays finite
says: overflows to inf
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits, T=1.0):
    e = torch.exp(logits / T)
    return e / e.sum(dim=1, keepdim=True)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1),
                    reduction="batchmean") * T**2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
