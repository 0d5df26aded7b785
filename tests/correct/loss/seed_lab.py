"""The seed lab's distillation_loss (lab 09), pasted into our signatures; soft_targets as F.softmax."""

import torch.nn.functional as F


def soft_targets(logits, T=1.0):
    return F.softmax(logits / T, dim=1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    soft_loss = F.kl_div(
        F.log_softmax(student_logits / T, dim=1),
        F.softmax(teacher_logits / T, dim=1),
        reduction='batchmean'
    ) * (T ** 2)
    hard_loss = F.cross_entropy(student_logits, labels)
    return alpha * soft_loss + (1 - alpha) * hard_loss
