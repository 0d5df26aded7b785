"""The common mistakes of the topic `loss`, each as a variant of the reference that makes it.

``recognise_loss`` and ``recognise_soft_targets`` run the learner's function and these variants on a
few probes chosen so that the variants disagree with each other and with the reference, and return
the mistake the learner's function behaves like (or None). The loss probes compare the value and
the gradient with respect to the student's logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from grader.diagnose import Mistake, Probe, named, probe, recognise, same

DEFAULT_T, DEFAULT_ALPHA = 2.0, 0.7  # the defaults of the exercise's signature


# ---------------------------------------------------------------------------------------------------
# distillation_loss


def _kd(s: Tensor, t: Tensor, y: Tensor, T: float, alpha: float, *, student_T=True, teacher_T=True,
        scale="T**2", reduction="batchmean", order="teacher||student", student_input="log-probs",
        alpha_on="soft", hard_T=False, soft="kl", fixed_T=None, fixed_alpha=None) -> Tensor:
    """The distillation loss with some parts changed; the defaults give the reference."""
    T = T if fixed_T is None else fixed_T
    alpha = alpha if fixed_alpha is None else fixed_alpha
    log_q = F.log_softmax(s / T if student_T else s, dim=1)  # student, (B, C)
    log_p = F.log_softmax(t / T if teacher_T else t, dim=1)  # teacher, (B, C)
    if soft == "cross-entropy":
        per_example = -(log_p.exp() * log_q).sum(dim=1)
    elif order == "student||teacher":
        per_example = (log_q.exp() * (log_q - log_p)).sum(dim=1)
    elif student_input == "probs":  # F.kl_div(q, p): sum p * (log p - q)
        per_example = (log_p.exp() * (log_p - log_q.exp())).sum(dim=1)
    else:
        per_example = (log_p.exp() * (log_p - log_q)).sum(dim=1)
    kl = {"batchmean": per_example.mean(), "mean": per_example.sum() / s.numel(), "sum": per_example.sum()}[reduction]
    factor = {"T**2": T**2, "T": T, "1": 1.0}[scale]
    hard = F.cross_entropy(s / T if hard_T else s, y)
    a = alpha if alpha_on == "soft" else 1 - alpha
    return a * factor * kl + (1 - a) * hard


def _variant(**changes):
    def loss(student_logits, teacher_logits, labels, T=DEFAULT_T, alpha=DEFAULT_ALPHA):
        return _kd(student_logits, teacher_logits, labels, T, alpha, **changes)
    loss.changes = changes
    return loss


LOSS_MISTAKES = named("loss", [
    Mistake("no T**2", "The soft term is missing its T**2 factor: multiply the KL term by T**2 "
            "(Hinton et al. 2015), which keeps its gradients the same size whatever T is.", _variant(scale="1")),
    Mistake("T instead of T**2", "The soft term is multiplied by T instead of T**2: multiply the KL term by "
            "T**2 (T squared).", _variant(scale="T")),
    Mistake("reduction mean", "The KL term is averaged over the classes as well as over the batch "
            "(reduction='mean', the default of F.kl_div and nn.KLDivLoss, or .mean() over every element): "
            "use reduction='batchmean', which sums over the classes and averages over the batch only.",
            _variant(reduction="mean")),
    Mistake("reduction sum", "The KL term is summed over the batch instead of averaged (reduction='sum'), so "
            "the loss grows with the batch size: use reduction='batchmean' (sum over the classes, mean over the "
            "batch).", _variant(reduction="sum")),
    Mistake("KL order", "The KL divergence is taken the wrong way round, KL(student || teacher): F.kl_div(input, "
            "target) computes KL(target || exp(input)), so pass the student's log-probabilities first and the "
            "teacher's probabilities second.", _variant(order="student||teacher")),
    Mistake("probabilities into kl_div", "F.kl_div got the student's probabilities as its first argument, "
            "which must be log-probabilities: pass F.log_softmax(student_logits / T, dim=1), not F.softmax(...).",
            _variant(student_input="probs")),
    Mistake("alpha swapped", "alpha weighs the wrong term: alpha multiplies the soft (KL) term and (1 - alpha) "
            "the hard cross-entropy term, not the other way round.", _variant(alpha_on="hard")),
    Mistake("no T on teacher", "The teacher's logits are not divided by T: soften both distributions, "
            "the teacher's with softmax(teacher_logits / T, dim=1).", _variant(teacher_T=False)),
    Mistake("no T on student", "The student's logits are not divided by T in the soft term: use "
            "log_softmax(student_logits / T, dim=1), like the teacher's.", _variant(student_T=False)),
    Mistake("no T on either", "Neither the student's nor the teacher's logits are divided by T in the soft term: "
            "compare log_softmax(student_logits / T) with softmax(teacher_logits / T).",
            _variant(student_T=False, teacher_T=False)),
    Mistake("T in hard term", "The hard-label term uses the softened logits: the cross-entropy with the labels "
            "takes the plain student_logits (no division by T).", _variant(hard_T=True)),
    Mistake("soft cross-entropy", "You computed the cross-entropy with the teacher's soft targets, not the KL "
            "divergence: they differ by T**2 times the teacher's entropy, a constant that leaves the gradients "
            "alone but not the value; use F.kl_div(log_p_student, p_teacher, reduction='batchmean').",
            _variant(soft="cross-entropy")),
    Mistake("T ignored", f"The T argument is ignored: your loss is the same for every T, as if T were always "
            f"{DEFAULT_T:g}; use the T that the caller passes (no fixed number inside the function).",
            _variant(fixed_T=DEFAULT_T)),
    Mistake("T never used", "The T argument is never used: your loss is the plain T=1 loss whatever T is; divide "
            "both the student's and the teacher's logits by T in the soft term and multiply that term by T**2.",
            _variant(fixed_T=1.0)),
    Mistake("alpha ignored", f"The alpha argument is ignored: your loss is the same for every alpha, as if alpha "
            f"were always {DEFAULT_ALPHA:g}; use the alpha that the caller passes.",
            _variant(fixed_alpha=DEFAULT_ALPHA)),
])

# Where each mistake lives in the learner's distillation_loss: targets of the worker's task source.find
# (grader/worker/source.py), tried in order; the message shows the first line found under it.
KL_CALL = ["call:kl_div", "call:KLDivLoss", "call:kl_divergence"]
WHERE = {
    "no T**2": [*KL_CALL, "return"],
    "T instead of T**2": [*KL_CALL, "return"],
    "reduction mean": [*KL_CALL, "call:mean", "return"],
    "reduction sum": [*KL_CALL, "call:sum", "return"],
    "KL order": [*KL_CALL, "return"],
    "probabilities into kl_div": [*KL_CALL, "return"],
    "alpha swapped": ["uses:alpha", "return"],
    "alpha ignored": ["uses:alpha", "return"],
    "no T on teacher": ["uses:teacher_logits", *KL_CALL],
    "no T on student": ["call:log_softmax", "uses:student_logits", *KL_CALL],
    "no T on either": ["call:log_softmax", "call:softmax", *KL_CALL],
    "T in hard term": ["call:cross_entropy", "call:CrossEntropyLoss", "call:nll_loss", "return"],
    "soft cross-entropy": [*KL_CALL, "call:log_softmax", "return"],
    "T ignored": ["uses:T", *KL_CALL, "return"],
    "T never used": [*KL_CALL, "return"],
    "softmax over the batch": ["call:softmax", "call:exp", "return"],
    "multiplied by T": ["call:softmax", "call:exp", "return"],
    "log-probabilities": ["call:log_softmax", "call:softmax", "return"],
}
RETURNED_WHERE = {"float": ["call:item", "call:float", "return"],
                  "vector": [*KL_CALL, "call:cross_entropy", "return"],
                  "detached": ["call:detach", "call:no_grad", "call:tensor", "call:item", "return"],
                  "overflow": ["call:log", "call:exp", "call:sqrt", "return"],
                  "in place": ["in-place"],
                  "unknown": ["return"]}


def where(mistake: Mistake | None) -> list[str]:
    """The source.find targets of a recognised mistake (both parts of two at once), or of none."""
    if mistake is None:
        return RETURNED_WHERE["unknown"]
    parts = PARTS.get(mistake.name, (mistake,))
    return [t for m in parts for t in WHERE.get(m.name, [])] or RETURNED_WHERE["unknown"]


# Given on a float (.item()) or on a per-example loss; checked by type and shape, not by value.
RETURNED_FLOAT = ("it returned {what}: .item() or float() turns the loss into a plain number that autograd "
                  "cannot back-propagate through. Return the tensor itself.")
RETURNED_VECTOR = ("it returned a tensor of shape {shape}, one loss per example, where a single number (shape ()) "
                   "is expected: average the per-example losses over the batch (reduction='batchmean' for "
                   "F.kl_div, the default reduction of F.cross_entropy).")
OVERFLOW = ("it is right for ordinary logits but gives {kind} for confident ones: torch.log(softmax(x)) takes "
            "log(0) = -inf once a probability underflows, and exp() of large logits overflows to inf. Use "
            "F.log_softmax(x / T, dim=1), which computes the log-probabilities stably.")
IN_PLACE = ("an in-place operation such as `{name} /= T` or `{name}.div_(T)` modifies the caller's tensor; "
            "compute a new tensor instead: `{short} = {name} / T`.")


def loss_probes() -> list[Probe]:
    """Inputs on which the variants give different values (two temperatures, two weights, two batch sizes)."""
    g = torch.Generator().manual_seed(1234)
    probes = []
    for batch, T, alpha in ((5, 4.0, 0.3), (3, 1.5, 0.8)):
        s = torch.randn(batch, 10, generator=g) * 3
        t = torch.randn(batch, 10, generator=g) * 3
        y = torch.randint(0, 10, (batch,), generator=g)
        probes.append(probe(s, t, y, T=T, alpha=alpha))
    return probes


def value_and_gradient(fn, p: Probe):
    """The loss and its gradient with respect to the student's logits; just the output when not a scalar.

    ``fn`` is a function of the judge's (a variant, the reference) or the learner's, which runs in the worker.
    """
    s, t, y = (a.detach().clone() for a in p.args)
    if hasattr(fn, "call"):  # the learner's: the worker back-propagates and sends the gradient
        reply = fn.call(s, t, y, grad_of=0, **p.kwargs)
        out = reply.get("value")
        if not (isinstance(out, Tensor) and out.numel() == 1 and reply.get("requires_grad")):
            return out
        return out.detach().reshape(()), reply.get("grad")
    s.requires_grad_(True)
    out = fn(s, t, y, **p.kwargs)
    if not (isinstance(out, Tensor) and out.numel() == 1 and out.requires_grad):
        return out
    out.reshape(()).backward()
    return out.detach().reshape(()), s.grad


# Changes to the same part of the loss (the KL term's formula) cannot be combined.
EXCLUSIVE = {"soft", "order", "student_input"}


def _lower_first(sentence: str) -> str:
    """"The soft term ..." -> "the soft term ..." after a colon; a name such as F.kl_div or KL stays as it is."""
    word = sentence.split(" ", 1)[0]
    if len(word) > 1 and word[0].isupper() and word[1:].isalpha() and word[1:].islower():
        return sentence[0].lower() + sentence[1:]
    return sentence


PARTS: dict[str, tuple[Mistake, Mistake]] = {}  # the name of a pair -> its two mistakes


def pairs(mistakes: list[Mistake]) -> list[Mistake]:
    """Two mistakes at once, as one Mistake whose sentence gives both."""
    found = []
    for i, a in enumerate(mistakes):
        for b in mistakes[i + 1:]:
            ca, cb = a.variant.changes, b.variant.changes
            if set(ca) & set(cb) or (set(ca) & EXCLUSIVE and set(cb) & EXCLUSIVE):
                continue
            both = Mistake(f"{a.name} + {b.name}", f"Two mistakes together explain it. First: {_lower_first(a.says)} "
                           f"Second: {_lower_first(b.says)}", _variant(**ca, **cb), id=f"{a.id}+{b.id}")
            PARTS[both.name] = (a, b)
            found.append(both)
    return found


def _shows(variant, reference, case: Probe) -> bool:
    """Whether ``variant`` gives another value or gradient than the reference on ``case``."""
    try:
        return not same(value_and_gradient(variant, case), value_and_gradient(reference, case))
    except Exception:
        return True


def shown_at(mistake: Mistake | None, reference, case: Probe | None) -> Mistake | None:
    """The part of ``mistake`` that changes the loss on ``case`` (the setting a check found wrong): with
    alpha=0 the KL term is gone, so a mistake in it cannot be what makes that value wrong. For two mistakes
    at once, the one that shows there alone (both when each does, or when only the two together do); None
    when the mistake does not change the loss on ``case`` at all."""
    if mistake is None or case is None:
        return mistake
    parts = PARTS.get(mistake.name)
    if parts is None:
        return mistake if _shows(mistake.variant, reference, case) else None
    shown = [m for m in parts if _shows(m.variant, reference, case)]
    if len(shown) == 1:
        return shown[0]
    return mistake if shown or _shows(mistake.variant, reference, case) else None


_found: dict = {}  # (learner, reference) -> Mistake | None: several checks of one run ask about the same code


def recognise_loss(learner, reference) -> Mistake | None:
    """The mistake in the learner's distillation_loss, judged on value and gradient, or None.

    One mistake is looked for first; only when none explains it, two at once.
    """
    key = (learner, reference)
    if key not in _found:
        probes = loss_probes()
        _found[key] = (recognise(learner, LOSS_MISTAKES, probes, observe=value_and_gradient, correct=reference)
                       or recognise(learner, pairs(LOSS_MISTAKES), probes, observe=value_and_gradient,
                                    correct=reference))
    return _found[key]


# ---------------------------------------------------------------------------------------------------
# soft_targets


def _soft(dim=-1, how="divide", log=False):
    def soft_targets(logits, T=1.0):
        z = {"divide": logits / T, "multiply": logits * T, "ignore": logits}[how]
        return (F.log_softmax if log else F.softmax)(z, dim=dim)
    return soft_targets


SOFT_TARGETS_MISTAKES = named("loss.soft_targets", [
    Mistake("softmax over the batch", "The softmax is taken over the batch (dim=0), so each column sums to 1 "
            "instead of each row: take it over the classes, dim=-1 (or dim=1).", _soft(dim=0)),
    Mistake("multiplied by T", "The logits are multiplied by T, which sharpens the distribution: divide them by "
            "T, softmax(logits / T).", _soft(how="multiply")),
    Mistake("T ignored", "The temperature is ignored: the result is the same for every T; divide the logits by "
            "T before the softmax.", _soft(how="ignore")),
    Mistake("log-probabilities", "It returns log-probabilities (log_softmax): return the probabilities "
            "themselves, softmax(logits / T, dim=-1).", _soft(log=True)),
])
SOFT_OVERFLOW = ("it gives {kind} for confident logits: exp() of logits in the hundreds overflows to inf. "
                 "Subtract each row's maximum before exp(), or use F.softmax, which does.")


def soft_targets_probes() -> list[Probe]:
    g = torch.Generator().manual_seed(4321)
    return [probe(torch.randn(4, 10, generator=g) * 3, T=3.0), probe(torch.randn(4, 10, generator=g) * 2, T=0.5)]


def recognise_soft_targets(learner, reference) -> Mistake | None:
    """The mistake in the learner's soft_targets, or None."""
    return recognise(learner, SOFT_TARGETS_MISTAKES, soft_targets_probes(), correct=reference)
