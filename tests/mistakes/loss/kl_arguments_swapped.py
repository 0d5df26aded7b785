"""F.kl_div gets the teacher first and the student second: KL(student || teacher).

check: matches the reference
says: wrong way round
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    # KL(teacher || student), teacher first like in the formula
    soft = F.kl_div(F.log_softmax(teacher_logits / T, dim=1), F.softmax(student_logits / T, dim=1),
                    reduction="batchmean")
    return alpha * T**2 * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
