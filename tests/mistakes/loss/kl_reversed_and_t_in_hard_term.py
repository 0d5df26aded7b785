"""Two mistakes: F.kl_div gets the teacher first (KL(student || teacher)), and the hard-label term takes the
softened logits. With alpha=0 the KL term is gone: only the hard term's mistake shows there, and the check of
alpha=0 names that one alone, not the reversed KL.

check: with alpha=0 it is exactly the cross-entropy
says: The hard-label term uses the softened logits
never says: wrong way round
"""

import torch
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    s = student_logits / T
    t = teacher_logits / T
    soft = F.kl_div(F.log_softmax(t, dim=1), F.softmax(s, dim=1), reduction="batchmean") * T**2
    hard = F.cross_entropy(s, labels)
    return alpha * soft + (1 - alpha) * hard
