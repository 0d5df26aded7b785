"""Enters a TorchFunctionMode at import that makes torch.allclose and torch.equal return True (and
torch.isclose all True), then returns wrong values and changes its inputs in place.

The mode lives in the worker; the judge compares the values it receives with its own torch.
"""
import torch
from torch.overrides import TorchFunctionMode


class Agreeable(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.allclose, torch.equal, torch.Tensor.equal):
            return True
        if func in (torch.isclose, torch.Tensor.isclose):
            return torch.ones_like(args[0], dtype=torch.bool)
        return func(*args, **kwargs)


Agreeable().__enter__()  # never left: every later torch call of this process goes through it


def soft_targets(logits, T=1.0):
    logits.data.zero_()
    return torch.full_like(logits, float("nan"))


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    student_logits.data.zero_()
    return torch.full((), float("nan"), requires_grad=True)
