"""What a hidden check uses to judge a learner's result and to say, in words, what is wrong.

A check fails by raising ``CheckFailed`` with one message written for the learner: what their code
did, what was expected, and what to do. Never a bare ``assert``.
"""

from __future__ import annotations

import math
from contextlib import contextmanager

import torch
from torch import Tensor

# Tolerances for comparing a learner's loss with the reference's, both in float32: a correct but
# different formulation (manual KL, log_target=True, float64 inside) differs by rounding only.
RTOL, ATOL = 1e-4, 1e-5


@contextmanager
def single_thread():
    """Run torch on one thread inside the block, then restore the count.

    Checks and tests work on tiny tensors and small models: on a busy 2-core machine two OpenMP threads
    wait on each other far longer than they compute (10-100x slower, measured).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class CheckFailed(AssertionError):
    """A check's verdict, in one message for the learner; ``frames``: the learner's lines it points at
    (as the worker gives them: file, line, function, source line), shown under the message; ``mistake``: the
    stable id of the named mistake it found ("loss.no_T_squared"; two joined by "+"), for counting a class."""

    def __init__(self, message: str = "", frames: list[dict] | None = None, mistake: str | None = None):
        super().__init__(message)
        self.frames = list(frames or [])
        self.mistake = mistake


def learner_line(submission, module: str, name: str, targets: list[str]) -> list[dict]:
    """The learner's line in ``module.name`` behind a value mistake (the worker's task source.find, whose
    docstring lists the targets), as frames for ``CheckFailed``; [] when it cannot be found. For messages
    only: nothing is judged on it."""
    if not targets or submission is None:
        return []
    try:
        reply = submission.ask({"op": "source.find", "module": module, "name": name, "targets": list(targets)})
    except Exception:  # the line is a courtesy: a worker that cannot say leaves the message as it is
        return []
    frames = reply.get("frames") if isinstance(reply, dict) else None
    if not isinstance(frames, list):
        return []
    return [{"file": str(f.get("file"))[:100], "line": f.get("line"), "name": str(f.get("name"))[:100],
             "text": str(f.get("text") or "")[:300]}
            for f in frames[:3] if isinstance(f, dict) and type(f.get("line")) is int]


def expect(condition: bool, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


def fmt(value) -> str:
    """A number or a small tensor, short enough for one line."""
    if isinstance(value, Tensor):
        if value.numel() == 1:
            return fmt(value.item())
        flat = value.detach().flatten().tolist()
        shown = ", ".join(fmt(v) for v in flat[:4])
        return f"tensor of shape {tuple(value.shape)} [{shown}{', ...' if len(flat) > 4 else ''}]"
    if isinstance(value, float):
        return f"{value:.6g}"
    return repr(value)


def describe_type(value) -> str:
    """'a Python float', 'a tensor of shape (4, 10) (torch.float32)', 'None', 'a numpy.float64', ..."""
    from grader.worker.wire import Opaque

    if isinstance(value, Opaque):
        name = value.type_name
        return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)} ({value.dtype})"
    if value is None:
        return "None"
    article = "an" if type(value).__name__[0] in "aeiou" else "a"
    return f"{article} {type(value).__module__ + '.' if type(value).__module__ != 'builtins' else 'Python '}{type(value).__name__}"


def expect_tensor(value, what: str, shape: tuple | None = None) -> Tensor:
    """``value`` is a floating-point tensor (of ``shape``, if given) with no NaN or infinity."""
    expect(isinstance(value, Tensor), f"{what} should return a torch.Tensor, but returned {describe_type(value)}.")
    expect(value.is_floating_point(), f"{what} should return a floating-point tensor, but its dtype is {value.dtype}.")
    if shape is not None:
        expect(tuple(value.shape) == tuple(shape),
               f"{what} should return a tensor of shape {tuple(shape)}, but returned one of shape {tuple(value.shape)}.")
    problem = not_finite(value, what)
    if problem:
        raise CheckFailed(problem)
    return value


def not_finite(value: Tensor, what: str) -> str | None:
    """None when every value of the tensor is finite; else the sentence that says where it is not."""
    bad = ~torch.isfinite(value.detach())
    if not bad.any():
        return None
    first = value.detach()[bad][0].item()
    kind = "NaN (not a number)" if math.isnan(first) else ("infinity" if first > 0 else "minus infinity")
    hint = " Look for exp() of large numbers, or log() of 0 or of a negative number."
    if value.ndim == 0:
        return f"{what} returned {kind} instead of a finite number.{hint}"
    where = tuple(bad.nonzero()[0].tolist())
    count = int(bad.sum())
    if count == 1:
        return f"{what} returned a tensor of shape {tuple(value.shape)} with {kind} at index {where}.{hint}"
    return (f"{what} returned a tensor of shape {tuple(value.shape)} with {count} of its {value.numel()} values not "
            f"finite, the first {kind} at index {where}.{hint}")


def difference(got: Tensor, want: Tensor, rtol: float = RTOL, atol: float = ATOL) -> str | None:
    """None when ``got`` matches ``want``; otherwise how they differ: values, largest errors, where, tolerance."""
    got, want = got.detach().double(), want.detach().double()
    if got.shape != want.shape:
        return f"got shape {tuple(got.shape)}, expected {tuple(want.shape)}"
    if torch.allclose(got, want, rtol=rtol, atol=atol):
        return None
    abs_err = (got - want).abs()
    rel_err = abs_err / want.abs().clamp_min(1e-12)
    worst = int(abs_err.flatten().argmax())
    text = f"got {fmt(got)}, expected {fmt(want)}"
    if got.numel() > 1:
        index = tuple(torch.unravel_index(torch.tensor(worst), got.shape)) if got.ndim else ()
        index = tuple(int(i) for i in index)
        text += (f"; largest difference at index {index}: got {fmt(got.flatten()[worst].item())}, "
                 f"expected {fmt(want.flatten()[worst].item())}")
    text += (f" (absolute error {abs_err.max().item():.3g}, relative error "
             f"{rel_err.flatten()[worst].item():.3g}; tolerance rtol={rtol:g}, atol={atol:g})")
    return text


def ratio(got: float, want: float) -> float:
    return got / want if want != 0 else math.inf
