"""alpha weighs the hard-label term instead of the soft term.

check: matches the reference
says: alpha weighs the wrong term
mistake: loss.alpha_swapped
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1),
                    reduction="batchmean") * T**2
    hard = F.cross_entropy(student_logits, labels)
    return alpha * hard + (1 - alpha) * soft
