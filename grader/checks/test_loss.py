"""Hidden checks of the topic `loss`: soft_targets and distillation_loss.

Each check runs the learner's function and the reference on the same small seeded tensors. When a
value is wrong, grader.diagnose.loss looks for the common mistake that explains it; when none does,
the message says exactly how the numbers differ.
"""

from __future__ import annotations

import numbers
from contextlib import contextmanager

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

from grader.grading.checking import (CheckFailed, describe_type, difference, expect, expect_tensor, fmt, learner_line,
                             not_finite, ratio)
from grader.grading.remote import LearnerError
from grader.worker.wire import Opaque
from grader.diagnose import probe, same
from grader.diagnose.loss import (IN_PLACE, OVERFLOW, RETURNED_FLOAT, RETURNED_VECTOR, RETURNED_WHERE, SOFT_OVERFLOW,
                                  loss_probes, recognise_loss, recognise_soft_targets, shown_at, value_and_gradient,
                                  where)

pytestmark = [pytest.mark.loss, pytest.mark.usefixtures("one_thread")]

# The grid of the issue: temperatures and weights a course uses, and a batch of one (mean == sum there).
TEMPERATURES = (1.0, 2.0, 4.0, 10.0, 20.0)
ALPHAS = (0.0, 0.3, 0.7, 1.0)
BATCH_SIZES = (1, 8)
CLASSES = 10
LOGIT_SCALE = 3.0  # logits of a half-trained model: softmax neither uniform nor one-hot
CONFIDENT_GAP = 300.0  # "a few hundred": exp(300) overflows float32, softmax underflows to exact zeros
ROW_SUM_ATOL = 1e-5  # float32 softmax rows sum to 1 within a few ulps
ZERO_ATOL = 1e-5  # KL(p || p) in float32: exactly 0 for log_softmax formulations, ~1e-7 for others


def logits(batch: int = 8, scale: float = LOGIT_SCALE) -> tuple[Tensor, Tensor, Tensor]:
    """Student logits, teacher logits and labels for one batch (from the check's seeded state)."""
    return torch.randn(batch, CLASSES) * scale, torch.randn(batch, CLASSES) * scale, torch.randint(0, CLASSES, (batch,))


def confident(batch: int = 6) -> tuple[Tensor, Tensor, Tensor]:
    """Logits whose top class leads by a few hundred; student and teacher disagree on some rows."""
    s, t, y = logits(batch, scale=1.0)
    top_s, top_t = torch.randint(0, CLASSES, (batch,)), torch.randint(0, CLASSES, (batch,))
    s[torch.arange(batch), top_s] += CONFIDENT_GAP
    t[torch.arange(batch), top_t] += CONFIDENT_GAP
    return s, t, y


def setting(batch: int, T: float, alpha: float) -> str:
    return f"T={T:g}, alpha={alpha:g} and a batch of {batch}"


def failed(fn, message: str, targets: list[str], mistake=None) -> CheckFailed:
    """The verdict on the learner's function ``fn``, pointing at its line that ``targets`` find (source.find);
    ``mistake``: the recognised Mistake the message names, if any (its id goes with the verdict)."""
    remote, module, name = (getattr(fn, a, None) for a in ("remote", "module", "name"))
    return CheckFailed(message, learner_line(remote, module, name, targets) if remote is not None else [],
                       mistake=mistake.id if mistake else None)


def scalar_loss(value, batch: int | None = None, fn=None) -> Tensor:
    """The learner's loss, checked to be a finite scalar tensor, with the common wrong types named."""
    if isinstance(value, numbers.Number) or (isinstance(value, Opaque) and value.number is not None):
        raise failed(fn, "distillation_loss should return a scalar tensor, but "
                     + RETURNED_FLOAT.format(what=describe(value)), RETURNED_WHERE["float"])
    if isinstance(value, Tensor) and value.is_floating_point() and not_finite(value, "distillation_loss"):
        raise failed(fn, not_finite(value, "distillation_loss"), RETURNED_WHERE["overflow"])
    expect_tensor(value, "distillation_loss")
    if value.ndim == 1 and (value.numel() > 1 or value.numel() == batch):
        raise failed(fn, "distillation_loss should return a scalar tensor, but "
                     + RETURNED_VECTOR.format(shape=tuple(value.shape)), RETURNED_WHERE["vector"])
    return expect_tensor(value, "distillation_loss", ())


@contextmanager
def in_place_refused(name: str = "student_logits", short: str = "s"):
    """PyTorch's error for an in-place edit of a tensor that requires grad, as a message for the learner."""
    try:
        yield
    except LearnerError as err:
        if err.type != "RuntimeError" or "in-place" not in err.message:
            raise
        raise CheckFailed(f"distillation_loss tried to change {name} in place, which PyTorch refuses for a tensor "
                          "that requires a gradient: " + IN_PLACE.format(name=name, short=short)) from None


def describe(value) -> str:
    if isinstance(value, Opaque):
        return f"{describe_type(value)} ({value.text})"
    return f"a Python {type(value).__name__} ({fmt(value)})"


def run_loss(fn, s, t, y, **kwargs) -> Tensor:
    """``fn`` on copies of the inputs (a learner's in-place edit must not leak into the next call)."""
    return scalar_loss(fn(s.clone(), t.clone(), y.clone(), **kwargs), batch=len(s), fn=fn)


def wrong_loss(fn, reference, setting_: str, got: Tensor, want: Tensor, expected: str = "", note: str = "",
               case=None) -> CheckFailed:
    """The verdict on a wrong loss value: the recognised mistake (the part of it that shows on ``case``, the
    probe of the wrong setting), or exactly how the numbers differ; at the learner's line it comes from."""
    mistake = shown_at(recognise_loss(fn, reference), reference, case)
    if mistake:
        return failed(fn, f"distillation_loss with {setting_} gave {fmt(got)}, expected {expected}{fmt(want)}{note}. "
                      f"{mistake.says}", where(mistake), mistake)
    return failed(fn, f"distillation_loss with {setting_}{note}: {difference(got, want)}. It matches none of the "
                  "common mistakes: compare your code term by term with the formula in its docstring.", where(None))


# ---------------------------------------------------------------------------------------------------
# soft_targets


def soft(fn, x: Tensor, T: float) -> Tensor:
    return expect_tensor(fn(x.clone(), T=T), f"soft_targets(logits, T={T:g})", tuple(x.shape))


def test_soft_targets_is_the_softmax_at_temperature_T(submission, reference):
    """soft_targets is the softmax of logits / T (T = 1, 2, 4, 10, 20)"""
    fn, ref = submission.loss.soft_targets, reference.loss.soft_targets
    x = torch.randn(8, CLASSES) * LOGIT_SCALE
    for T in TEMPERATURES:
        got, want = soft(fn, x, T), ref(x, T=T)
        diff = difference(got, want)
        if diff is None:
            continue
        mistake = recognise_soft_targets(fn, ref)
        if mistake:
            raise failed(fn, f"soft_targets(logits, T={T:g}) is wrong. {mistake.says}", where(mistake), mistake)
        extra = " At T=1 it should be exactly F.softmax(logits, dim=-1)." if T == 1.0 else ""
        raise failed(fn, f"soft_targets(logits, T={T:g}): {diff}.{extra}", ["call:softmax", "return"])


def test_soft_targets_rows_sum_to_one_and_flatten_as_T_grows(submission, reference):
    """soft_targets gives rows that sum to 1 and flatten as T grows"""
    fn = submission.loss.soft_targets
    x = torch.randn(8, CLASSES) * LOGIT_SCALE
    previous = None
    for T in TEMPERATURES:
        p = soft(fn, x, T)
        sums = p.detach().double().sum(dim=-1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=ROW_SUM_ATOL):
            mistake = recognise_soft_targets(fn, reference.loss.soft_targets)
            row = int((sums - 1).abs().argmax())
            raise failed(fn, f"soft_targets(logits, T={T:g}): row {row} sums to {sums[row].item():.6g}, not 1. "
                         + (mistake.says if mistake else "Take the softmax along the class dimension (dim=-1)."),
                         where(mistake) if mistake else ["call:softmax", "call:sum", "return"], mistake)
        top = p.detach().max(dim=-1).values  # (B,) the largest probability of each row
        if previous is not None and (top > previous[1] + ROW_SUM_ATOL).any():
            row = int((top - previous[1]).argmax())
            raise failed(fn, f"soft_targets should flatten as T grows, but row {row}'s largest probability rose "
                         f"from {previous[1][row].item():.4g} at T={previous[0]:g} to {top[row].item():.4g} at "
                         f"T={T:g}. Divide the logits by T (not multiply) before the softmax.",
                         ["call:softmax", "uses:T", "return"])
        previous = (T, top)


def test_soft_targets_is_finite_for_confident_logits(submission, reference):
    """soft_targets stays finite for confident logits (gaps of a few hundred)"""
    fn = submission.loss.soft_targets
    x, _, _ = confident()
    got = fn(x.clone(), T=1.0)
    if isinstance(got, Tensor) and got.is_floating_point() and not torch.isfinite(got.detach()).all():
        kind = "NaN" if torch.isnan(got.detach()).any() else "inf"
        raise failed(fn, f"soft_targets(logits, T=1) with logits near {CONFIDENT_GAP:g}: "
                     + SOFT_OVERFLOW.format(kind=kind), ["call:exp", "call:softmax", "return"])
    got = expect_tensor(got, "soft_targets(logits, T=1)", tuple(x.shape))
    diff = difference(got, reference.loss.soft_targets(x, T=1.0))
    if diff is not None:
        mistake = recognise_soft_targets(fn, reference.loss.soft_targets)
        raise failed(fn, f"soft_targets(logits, T=1) with logits near {CONFIDENT_GAP:g} is wrong. {mistake.says}"
                     if mistake else f"soft_targets(logits, T=1) with logits near {CONFIDENT_GAP:g}: {diff}.",
                     where(mistake) if mistake else ["call:exp", "call:softmax", "return"], mistake)


# ---------------------------------------------------------------------------------------------------
# distillation_loss


def test_returns_a_scalar_tensor_that_back_propagates(submission):
    """distillation_loss returns a scalar tensor that back-propagates to the student's logits"""
    s, t, y = logits()
    fn = submission.loss.distillation_loss
    with in_place_refused():
        reply = fn.call(s, t, y, T=4.0, alpha=0.7, grad_of=0)
    scalar_loss(reply.get("value"), batch=len(s), fn=fn)
    if reply.get("requires_grad") is not True:
        raise failed(fn, "distillation_loss returned a tensor that is not connected to student_logits, so "
                     "loss.backward() cannot train the student: do not .detach() the student's logits, do not compute "
                     "the loss inside torch.no_grad(), and do not rebuild it with torch.tensor(...).",
                     RETURNED_WHERE["detached"])
    grad = reply.get("grad")
    if not (isinstance(grad, Tensor) and grad.shape == s.shape and bool(torch.isfinite(grad).all())
            and bool(grad.abs().sum() > 0)):
        raise failed(fn, "loss.backward() put no gradient on student_logits: the loss must be computed from "
                     "student_logits with torch operations all the way (no .detach(), .item() or numpy in between).",
                     RETURNED_WHERE["detached"])


def test_matches_the_reference_over_T_and_alpha(submission, reference):
    """distillation_loss matches the reference for T in 1..20, alpha in 0..1, batches of 1 and 8"""
    fn, ref = submission.loss.distillation_loss, reference.loss.distillation_loss
    wrong = []
    for batch in BATCH_SIZES:
        s, t, y = logits(batch)
        for T in TEMPERATURES:
            for alpha in ALPHAS:
                got, want = run_loss(fn, s, t, y, T=T, alpha=alpha), ref(s, t, y, T=T, alpha=alpha)
                if difference(got, want) is not None:
                    wrong.append((setting(batch, T, alpha), got, want, probe(s, t, y, T=T, alpha=alpha)))
    if wrong:
        # the first wrong setting where the whole recognised mistake shows (both parts of two, say)
        mistake = recognise_loss(fn, ref)
        at, got, want, case = next((w for w in wrong if shown_at(mistake, ref, w[3]) == mistake), wrong[0])
        total = len(BATCH_SIZES) * len(TEMPERATURES) * len(ALPHAS)
        note = f" (wrong for {len(wrong)} of the {total} settings tried)"
        raise wrong_loss(fn, ref, at, got, want, note=note, case=case)


def test_gradient_matches_the_reference(submission, reference):
    """the gradient with respect to the student's logits matches the reference's"""
    fn, ref = submission.loss.distillation_loss, reference.loss.distillation_loss
    for batch in BATCH_SIZES:
        s, t, y = logits(batch)
        for T in TEMPERATURES:
            for alpha in ALPHAS:
                with in_place_refused():
                    theirs = value_and_gradient(fn, probe(s, t, y, T=T, alpha=alpha))
                if not isinstance(theirs, tuple):
                    scalar_loss(theirs, batch=batch, fn=fn)  # names the wrong type or shape
                    raise failed(fn, "distillation_loss returned a tensor that is not connected to "
                                 "student_logits, so it has no gradient: compute it from student_logits "
                                 "with torch operations, without .detach() or torch.no_grad().",
                                 RETURNED_WHERE["detached"])
                got, want = theirs[1], value_and_gradient(ref, probe(s, t, y, T=T, alpha=alpha))[1]
                if not isinstance(got, Tensor):
                    raise failed(fn, "loss.backward() put no gradient on student_logits: compute the loss from "
                                 "student_logits with torch operations all the way.", RETURNED_WHERE["detached"])
                diff = difference(got, want)
                if diff is None:
                    continue
                mistake = shown_at(recognise_loss(fn, ref), ref, probe(s, t, y, T=T, alpha=alpha))
                head = f"the gradient of distillation_loss with {setting(batch, T, alpha)} is wrong"
                raise failed(fn, f"{head}. {mistake.says}" if mistake else
                             f"{head}: {diff}. It matches none of the common mistakes: compare your code term "
                             "by term with the formula in its docstring.", where(mistake), mistake)


def test_alpha_zero_is_the_cross_entropy(submission, reference):
    """with alpha=0 it is exactly the cross-entropy with the labels"""
    fn = submission.loss.distillation_loss
    s, t, y = logits()
    for T in (1.0, 4.0):
        got, want = run_loss(fn, s, t, y, T=T, alpha=0.0), F.cross_entropy(s, y)
        if difference(got, want) is not None:
            raise wrong_loss(fn, reference.loss.distillation_loss, setting(8, T, 0.0), got, want,
                             expected="F.cross_entropy(student_logits, labels) = ", case=probe(s, t, y, T=T, alpha=0.0))


def test_identical_logits_give_zero_at_alpha_one(submission, reference):
    """with alpha=1 it is 0 when the student's logits equal the teacher's"""
    fn = submission.loss.distillation_loss
    s, _, y = logits()
    for T in (1.0, 4.0):
        got = run_loss(fn, s, s.clone(), y, T=T, alpha=1.0)
        if abs(got.item()) > ZERO_ATOL:
            ref = reference.loss.distillation_loss
            mistake = shown_at(recognise_loss(fn, ref), ref, probe(s, s.clone(), y, T=T, alpha=1.0))
            raise failed(fn, f"distillation_loss with the teacher's logits equal to the student's, T={T:g} and "
                         f"alpha=1 gave {fmt(got)}, expected 0: the KL divergence of a distribution from "
                         "itself is 0. " + (mistake.says if mistake else
                                            "Compute KL(p || q) = sum_i p_i * (log p_i - log q_i)."),
                         where(mistake) if mistake else ["call:kl_div", "return"], mistake)


def test_is_averaged_over_the_batch(submission, reference):
    """is averaged over the batch: the same batch twice gives the same value"""
    fn = submission.loss.distillation_loss
    s, t, y = logits()
    once = run_loss(fn, s, t, y, T=4.0, alpha=0.7)
    twice = run_loss(fn, torch.cat([s, s]), torch.cat([t, t]), torch.cat([y, y]), T=4.0, alpha=0.7)
    if difference(twice, once) is not None:
        mistake = recognise_loss(fn, reference.loss.distillation_loss)
        raise failed(fn, f"distillation_loss gave {fmt(once)} on a batch of 8 and {fmt(twice)} on the same batch "
                     f"twice (16 examples), {ratio(twice.item(), once.item()):.3g} times as much; a mean over the "
                     "batch would not change. " + (mistake.says if mistake else
                                                   "Average both terms over the batch, not sum them."),
                     where(mistake) if mistake else ["call:kl_div", "call:sum", "return"], mistake)


def test_leaves_its_inputs_unchanged(submission):
    """leaves its inputs unchanged"""
    s, t, y = logits()
    copies = {"student_logits": s.clone(), "teacher_logits": t.clone(), "labels": y.clone()}
    after_call = submission.loss.distillation_loss.call(s, t, y, T=4.0, alpha=0.7, return_args=True).get("args")
    expect(isinstance(after_call, list) and len(after_call) == 3 and all(isinstance(a, Tensor) for a in after_call),
           "the worker did not send distillation_loss's arguments back, so they cannot be checked.")
    for (name, before), after in zip(copies.items(), after_call):
        short = {"student_logits": "s", "teacher_logits": "t", "labels": "y"}[name]
        if not (before.shape == after.shape and torch.equal(before, after)):
            raise failed(submission.loss.distillation_loss, f"distillation_loss changed {name} in place (its values "
                         "after the call differ from before): " + IN_PLACE.format(name=name, short=short),
                         RETURNED_WHERE["in place"])


def test_is_finite_and_right_for_confident_logits(submission, reference):
    """stays finite and right for confident logits (gaps of a few hundred, T=1)"""
    fn, ref = submission.loss.distillation_loss, reference.loss.distillation_loss
    s, t, y = confident()
    for alpha in (0.5, 1.0):
        out = fn(s.clone(), t.clone(), y.clone(), T=1.0, alpha=alpha)
        if isinstance(out, Tensor) and out.is_floating_point() and not torch.isfinite(out.detach()).all():
            ordinary = loss_probes()
            fine = all(same(value_and_gradient(fn, p), value_and_gradient(ref, p)) for p in ordinary)
            kind = "NaN" if torch.isnan(out.detach()).any() else "inf"
            if fine:
                raise failed(fn, f"distillation_loss with logits near {CONFIDENT_GAP:g}, T=1, alpha={alpha:g}: "
                             + OVERFLOW.format(kind=kind), RETURNED_WHERE["overflow"])
        got, want = scalar_loss(out, batch=len(s), fn=fn), ref(s, t, y, T=1.0, alpha=alpha)
        if difference(got, want) is not None:
            at = f"logits near {CONFIDENT_GAP:g}, T=1 and alpha={alpha:g}"
            raise wrong_loss(fn, ref, at, got, want, case=probe(s, t, y, T=1.0, alpha=alpha))
