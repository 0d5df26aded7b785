"""Returns a Tensor subclass whose __torch_function__ makes every comparison of it succeed (allclose, equal,
isclose, ==, and a - b giving zeros), holding wrong values.

The worker sends the judge its bytes only; the judge rebuilds a plain torch.Tensor and compares that.
"""
import torch


class Agreeable(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in (torch.allclose, torch.equal, torch.Tensor.equal):
            return True
        if func in (torch.isclose, torch.Tensor.isclose, torch.Tensor.__eq__, torch.eq):
            return torch.ones(torch.broadcast_shapes(*(a.shape for a in args[:2] if isinstance(a, torch.Tensor))),
                              dtype=torch.bool)
        if func in (torch.Tensor.__sub__, torch.Tensor.__rsub__, torch.sub):
            return torch.zeros(args[0].shape)
        return super().__torch_function__(func, types, args, kwargs)


def soft_targets(logits, T=1.0):
    return torch.full(logits.shape, float("nan")).as_subclass(Agreeable)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    student_logits.data.zero_()  # in place: a forged torch.equal would hide it
    return torch.full((), float("nan"), requires_grad=True).as_subclass(Agreeable)
