"""teacher_logits /= T changes the caller's tensor in place.

check: leaves its inputs unchanged
says: changed teacher_logits in place
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    teacher_logits /= T  # soften the teacher
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits, dim=1),
                    reduction="batchmean") * T**2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
