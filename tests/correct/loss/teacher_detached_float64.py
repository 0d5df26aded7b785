"""The teacher detached, everything computed in float64 inside, returned as float32."""

import torch.nn.functional as F


def soft_targets(logits, T=1.0):
    return F.softmax(logits.double() / T, dim=-1).to(logits.dtype)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    s = student_logits.double()
    t = teacher_logits.detach().double()
    soft = F.kl_div(F.log_softmax(s / T, dim=1), F.softmax(t / T, dim=1), reduction="batchmean")
    hard = F.cross_entropy(s, labels)
    return (alpha * T**2 * soft + (1 - alpha) * hard).float()
