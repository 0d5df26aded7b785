"""The T**2 factor on the soft term is left out.

check: matches the reference
says: missing its T**2 factor
mistake: loss.no_T_squared
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1),
                    reduction="batchmean")
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1 - alpha) * hard
