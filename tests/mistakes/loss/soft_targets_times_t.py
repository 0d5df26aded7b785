"""soft_targets multiplies the logits by T.

check: soft_targets is the softmax
says: multiplied by T
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits, T=1.0):
    return torch.softmax(logits * T, dim=-1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1),
                    reduction="batchmean") * T**2
    return alpha * soft + (1 - alpha) * F.cross_entropy(student_logits, labels)
