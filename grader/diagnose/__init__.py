"""Recognising a learner's mistake: which known wrong version of the code behaves like theirs.

A topic's diagnosis module (``grader/diagnose/loss.py``, ...) lists the common mistakes as
``Mistake``s: a name, the sentence the learner reads, and a reference variant that carries the
mistake (same signature as the learner's function). When a check fails, it calls

    found = recognise(submission.loss.distillation_loss, LOSS_MISTAKES, probes, correct=reference_fn)

with a few probe inputs chosen so that the variants give different answers. ``recognise`` returns
the one mistake whose variant agrees with the learner's function on every probe, or None. It never
names a mistake that does not match: a variant must agree on every probe, must differ from the
correct function on at least one of them, and nothing is named when the learner agrees with the
correct function on every probe.

The API (stable; other topics' diagnoses import it):
    Mistake(name, says, variant, id)      a known mistake; named(topic, mistakes) gives each its stable id
    probe(*args, **kwargs) -> Probe       one input to call a function with
    call(fn, probe)                       the default observation: fn's output on copies of the inputs
    same(a, b, rtol, atol) -> bool        two observations agree (tensors, numbers, or tuples of them)
    recognise(learner, mistakes, probes, observe=call, correct=None, rtol, atol, seed) -> Mistake | None
"""

from __future__ import annotations

import copy
import numbers
import re
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor

from grader.grading.checking import ATOL, RTOL


@dataclass(frozen=True)
class Mistake:
    """A known mistake: a short name, the sentence the learner reads, and a variant that makes it.

    ``says`` is one sentence (or two short ones) that says what the learner's code did and what to
    do instead, e.g. "You left out the T**2 factor on the soft term: multiply the KL term by T**2."
    """
    name: str
    says: str
    variant: Callable = field(compare=False, repr=False)
    id: str = ""  # "loss.no_T_squared": stable, what a class report counts (``named``); the wording may change


def mistake_id(topic: str, name: str) -> str:
    """The id of a mistake from its topic and short name: "loss", "no T**2" -> "loss.no_T_squared"."""
    words = re.sub(r"[^A-Za-z0-9]+", "_", name.replace("**2", " squared")).strip("_")
    return f"{topic}.{words}"


def named(topic: str, mistakes: list[Mistake]) -> list[Mistake]:
    """``mistakes`` with their ids (tests/mistake_ids.txt pins them: renaming a mistake must keep its id)."""
    return [m if m.id else replace(m, id=mistake_id(topic, m.name)) for m in mistakes]


@dataclass(frozen=True)
class Probe:
    """One input: positional and keyword arguments. Tensors are copied before each call."""
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)


def probe(*args, **kwargs) -> Probe:
    """``probe(s, t, y, T=4.0)``: the arguments of one call."""
    return Probe(args, kwargs)


def _copy(value):
    if isinstance(value, Tensor):
        return value.detach().clone()
    if isinstance(value, (list, tuple, dict)):
        return copy.deepcopy(value)
    return value  # models, loaders: observe functions that need fresh copies make them themselves


def call(fn: Callable, p: Probe):
    """The default observation: ``fn``'s output on fresh copies of the probe's tensors."""
    return fn(*(_copy(a) for a in p.args), **{k: _copy(v) for k, v in p.kwargs.items()})


def _numbers(value) -> list[Tensor] | None:
    """An observation as a flat list of float64 tensors; None when it holds something else."""
    if isinstance(value, Tensor):
        if not (value.is_floating_point() or value.dtype in (torch.int64, torch.int32, torch.bool)):
            return None
        return [value.detach().to(torch.float64).cpu()]
    if isinstance(value, bool):
        return [torch.tensor(float(value), dtype=torch.float64)]
    if isinstance(value, numbers.Real):
        return [torch.tensor(float(value), dtype=torch.float64)]
    if isinstance(value, (list, tuple)):
        parts = [_numbers(v) for v in value]
        if any(p is None for p in parts):
            return None
        return [t for p in parts for t in p]
    return None


def same(a, b, rtol: float = RTOL, atol: float = ATOL) -> bool:
    """Whether two observations hold the same numbers (shape included), within the tolerance.

    A Python float and a 0-d tensor of the same value are the same; NaN is never the same as anything.
    """
    xs, ys = _numbers(a), _numbers(b)
    if xs is None or ys is None or len(xs) != len(ys):
        return False
    for x, y in zip(xs, ys):
        if x.shape != y.shape or not torch.isfinite(x).all() or not torch.isfinite(y).all():
            return False
        if not torch.allclose(x, y, rtol=rtol, atol=atol):
            return False
    return True


def _observe(observe: Callable, fn: Callable, p: Probe, seed: int):
    """``observe(fn, p)`` from a fixed random state (dropout draws the same masks), restored after."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return observe(fn, p)


def recognise(learner: Callable, mistakes: Iterable[Mistake], probes: Sequence[Probe],
              observe: Callable[[Callable, Probe], Any] = call, correct: Callable | None = None,
              rtol: float = RTOL, atol: float = ATOL, seed: int = 0) -> Mistake | None:
    """The first of ``mistakes`` whose variant agrees with ``learner`` on every probe, or None.

    ``observe(fn, probe)`` says what is compared (default: the output of ``fn`` on copies of the
    probe's inputs); return e.g. ``(value, gradient)`` to compare gradients too. Each observation
    starts from ``torch.manual_seed(seed)`` and leaves the caller's random state as it was.

    Exceptions: when the learner's function raises on a probe, nothing is recognised (the check
    reports the exception itself); a variant that raises on a probe is skipped. When ``correct`` is
    given, a variant that agrees with it on every probe cannot be told apart and is skipped, and
    nothing is named when the learner agrees with it on every probe.
    """
    mistakes, probes = list(mistakes), list(probes)
    if not probes:
        return None
    try:
        theirs = [_observe(observe, learner, p, seed) for p in probes]
    except Exception:
        return None
    if any(_numbers(o) is None for o in theirs):
        return None
    right = None
    if correct is not None:
        right = [_observe(observe, correct, p, seed) for p in probes]
        if all(same(o, r, rtol, atol) for o, r in zip(theirs, right)):
            return None
    for mistake in mistakes:
        try:
            ours = [_observe(observe, mistake.variant, p, seed) for p in probes]
        except Exception:
            continue
        if right is not None and all(same(o, r, rtol, atol) for o, r in zip(ours, right)):
            continue  # indistinguishable from the correct code on these probes
        if all(same(t, o, rtol, atol) for t, o in zip(theirs, ours)):
            return mistake
    return None


__all__ = ["Mistake", "Probe", "probe", "call", "same", "recognise"]
