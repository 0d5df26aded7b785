"""soft_targets takes the softmax over the batch (dim=0).

check: soft_targets is the softmax
says: over the batch (dim=0)
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits, T=1.0):
    return F.softmax(logits / T, dim=0)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1),
                    reduction="batchmean") * T**2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
