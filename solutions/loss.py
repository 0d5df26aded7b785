"""Topic `loss`: soft targets and the knowledge-distillation loss (Hinton, Vinyals & Dean 2015)."""

import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    """Softmax at temperature T: the "softened" class probabilities of a model.

    p_i = exp(z_i / T) / sum_j exp(z_j / T), taken along the class dimension (the last one).
    T = 1 is the ordinary softmax; a larger T flattens the distribution and shows how the model
    ranks the wrong classes. It must stay finite for confident logits (z in the hundreds):
    subtract the row's maximum before exponentiating, or use a function that does.

    Args:
        logits: (B, C) raw scores.
        T: temperature, > 0.
    Returns:
        (B, C) probabilities; each row sums to 1.
    """
    # TODO(loss): divide by T, then take a numerically stable softmax over the classes.
    ### BEGIN SOLUTION
    return F.softmax(logits / T, dim=-1)  # F.softmax subtracts the row maximum internally
    ### END SOLUTION


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor,
                      T: float = 2.0, alpha: float = 0.7) -> Tensor:
    """Knowledge-distillation loss of Hinton et al. (2015).

    loss = alpha * T**2 * KL(softmax(teacher_logits / T) || softmax(student_logits / T))
           + (1 - alpha) * cross_entropy(student_logits, labels)

    KL(p || q) = sum_i p_i * (log p_i - log q_i) is summed over the classes and averaged over the
    batch (not over the classes too). The T**2 factor keeps the soft term's gradients on the same
    scale as the hard term's when T changes. The hard term uses the plain logits (T = 1).

    Args:
        student_logits: (B, C) raw scores of the student.
        teacher_logits: (B, C) raw scores of the teacher; a constant here.
        labels: (B,) class indices.
        T: temperature of the soft term, > 0.
        alpha: weight of the soft term, in [0, 1].
    Returns:
        A scalar tensor that can be back-propagated. The inputs are left unchanged.
    """
    # TODO(loss): soften both distributions with T, compare them with KL, mix in the hard-label loss.
    ### BEGIN SOLUTION
    log_p_student = F.log_softmax(student_logits / T, dim=-1)  # (B, C)
    log_p_teacher = F.log_softmax(teacher_logits / T, dim=-1)  # (B, C)
    # batchmean: sum over classes, mean over the batch; log_target avoids 0 * log(0) for confident teachers
    kl = F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True)
    # T**2 keeps the soft term's gradients on the scale of the hard term's (Hinton et al. 2015, sec. 2)
    soft = kl * T**2
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1 - alpha) * hard
    ### END SOLUTION
