"""What a learner's training loop did, watched with probes and hooks, and the mistake that explains it.

The values a loop returns say little about how it trained, so the checks of the topic `train` run the
learner's ``train_model`` or ``distill`` on probe models (one Linear layer on tiny synthetic images)
and a probe loader, and record every event on the way into a ``Trace``:

- each forward pass of a probe (its input, its output, train or eval mode, autograd on or off);
- each backward pass reaching the trained model's weight: the gradient it brought (``register_hook``)
  and what ``.grad`` held once it was added in (``register_post_accumulate_grad_hook``);
- each ``optimizer.step()`` (a global step pre-hook): the weight's ``.grad`` at that moment and which
  parameters the optimizer holds;
- each pass over the loader, each gradient reaching the teacher, and each call of
  ``distillation_loss`` (replaced, in the learner's train module, by the reference one wrapped in a
  recorder, so a bug in the learner's loss cannot show up as a training failure).

The ``*_problem`` functions read a trace and return one sentence naming the mistake (what the loop
did and what to do instead), or None when the loop did that part right. They name a mistake only
when the trace shows it: any loop that trains correctly, however it is written, gets None.
"""

from __future__ import annotations

import inspect
import math
import numbers
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from grader.data import Batches

CLASSES = 10
IMAGE = (1, 28, 28)
PIXELS = 28 * 28
DEFAULT_T, DEFAULT_ALPHA = 2.0, 0.7  # the defaults of distill's and distillation_loss's signatures
# Two gradients are "the same" within float32 rounding of a sum of a few terms.
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-7
# A returned mean loss matches the one we recompute from the recorded outputs within float32 rounding.
LOSS_RTOL, LOSS_ATOL = 1e-4, 1e-6


# ---------------------------------------------------------------------------------------------------
# What is recorded


@dataclass
class Pass:
    """One pass over the loader (an epoch, if the loop is right): the batches it yielded."""
    batches: list[tuple[Tensor, Tensor]] = field(default_factory=list)


@dataclass
class Forward:
    role: str  # "model" (train_model), "student" or "teacher"
    x: Tensor  # a copy of the input batch
    out: Tensor  # the output as returned, graph and all: loss calls are matched to it by identity
    training: bool  # the probe and all its submodules in train mode
    grad_enabled: bool


@dataclass
class Backward:
    fresh: Tensor  # the gradient this backward pass brought to the watched weight
    accumulated: Tensor | None = None  # .grad once it was added in


@dataclass
class Step:
    grad: Tensor | None  # the watched weight's .grad when optimizer.step() began
    optimizer: int  # id() of the optimizer
    holds_model: bool  # the optimizer holds the trained model's (student's) weight
    holds_teacher: bool


@dataclass
class TeacherGrad:
    """A gradient reached one of the teacher's parameters."""
    nonzero: bool


@dataclass
class LossCall:
    student_logits: Any
    teacher_logits: Any
    labels: Any
    T: Any
    alpha: Any
    given: frozenset  # the arguments the caller passed (the rest took their defaults)
    value: float


class Log(list):
    """The events of one run, in order. Shared, not copied, by a ``copy.deepcopy`` of a probe."""

    def __deepcopy__(self, memo):
        return self


@dataclass
class Trace:
    """Everything one run of the learner's train_model or distill did to the probes."""
    function: str  # "train_model" or "distill"
    epochs: int
    batches_per_epoch: int
    T: float = DEFAULT_T
    alpha: float = DEFAULT_ALPHA
    events: Log = field(default_factory=Log)
    result: Any = None
    weight_before: Tensor | None = None
    weight_after: Tensor | None = None
    teacher_before: list[Tensor] = field(default_factory=list)
    teacher_after: list[Tensor] = field(default_factory=list)
    teacher_grads_after: list[Tensor | None] = field(default_factory=list)
    model_probe: "Probe | None" = None  # the trained model (or student)
    teacher_probe: "Probe | None" = None
    teacher_handed_training: bool = False

    @property
    def trained(self) -> str:
        return "model" if self.function == "train_model" else "student"

    def of(self, kind) -> list:
        return [e for e in self.events if isinstance(e, kind)]

    def forwards(self, role: str, grad_enabled: bool | None = None) -> list[Forward]:
        return [e for e in self.of(Forward) if e.role == role
                and (grad_enabled is None or e.grad_enabled == grad_enabled)]

    @property
    def expected_steps(self) -> int:
        return self.epochs * self.batches_per_epoch

    def epochs_of(self, kind) -> list[list]:
        """Events of ``kind`` grouped by the loader pass they happened in (events before any pass dropped)."""
        groups: list[list] = []
        for event in self.events:
            if isinstance(event, Pass):
                groups.append([])
            elif isinstance(event, kind) and groups:
                groups[-1].append(event)
        return groups


# ---------------------------------------------------------------------------------------------------
# Probes


class Probe(nn.Module):
    """A tiny model for (B, 1, 28, 28) images: Flatten, Linear(784, 10). It records every forward pass."""

    def __init__(self, role: str, log: Log, weight: Tensor | None = None):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(PIXELS, CLASSES)
        if weight is not None:
            with torch.no_grad():
                self.linear.weight.copy_(weight)
                self.linear.bias.zero_()
        self.role, self.log = role, log

    def forward(self, x: Tensor) -> Tensor:
        out = self.linear(self.flatten(x))  # (B, 10)
        self.log.append(Forward(self.role, x.detach().clone(), out,
                                all(m.training for m in self.modules()), torch.is_grad_enabled()))
        return out

    def quietly(self, x: Tensor) -> Tensor:
        """The probe's output for ``x``, unrecorded and without autograd."""
        with torch.no_grad():
            return self.linear(self.flatten(x))


class ProbeLoader(Batches):
    """learnkd's Batches, shuffled anew on every pass, recording each pass and the batches it yields."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, log: Log, seed: int = 0):
        super().__init__(x, y, batch_size, shuffle=True, seed=seed)
        self.log = log

    def __iter__(self):
        current = Pass()
        self.log.append(current)
        for x, y in super().__iter__():
            current.batches.append((x, y))
            yield x, y


def class_patterns(seed: int) -> Tensor:
    """One random +-1 image per class, (10, 1, 28, 28): the synthetic classes are easy to tell apart."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(CLASSES, *IMAGE, generator=g).sign()


def pattern_data(n: int, patterns: Tensor, seed: int, noise: float = 0.5) -> tuple[Tensor, Tensor]:
    """``n`` noisy copies of the class patterns, every class equally often: x (n, 1, 28, 28), y (n,)."""
    g = torch.Generator().manual_seed(seed)
    y = (torch.arange(n) % CLASSES)[torch.randperm(n, generator=g)]
    x = patterns[y] + noise * torch.randn(n, *IMAGE, generator=g)
    return x, y


def disagreeing_weight(patterns: Tensor, scale: float = 8.0) -> Tensor:
    """A Linear weight whose logits for an image of class c peak at class (c + 1) % 10, by about ``scale``."""
    return scale * patterns.roll(1, dims=0).reshape(CLASSES, PIXELS) / PIXELS


# ---------------------------------------------------------------------------------------------------
# Recording a run


def _swap_loss(train_module, loss_module, replacement) -> list[tuple[Any, str, Any]]:
    """Put ``replacement`` in place of distillation_loss wherever the learner's train module can reach it."""
    originals = [getattr(m, "distillation_loss", None) for m in (train_module, loss_module) if m is not None]
    originals = [f for f in originals if callable(f)]
    swapped = []
    for name, value in list(vars(train_module).items()):
        if name == "distillation_loss" or any(value is f for f in originals):
            swapped.append((train_module, name, value))
            setattr(train_module, name, replacement)
    if loss_module is not None and hasattr(loss_module, "distillation_loss"):
        swapped.append((loss_module, "distillation_loss", loss_module.distillation_loss))
        loss_module.distillation_loss = replacement
    return swapped


def _recording_loss(reference_loss: Callable, log: Log) -> Callable:
    signature = inspect.signature(reference_loss)

    def distillation_loss(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError:
            return reference_loss(*args, **kwargs)  # raises the learner's TypeError, at their call
        given = frozenset(bound.arguments)
        bound.apply_defaults()
        a = bound.arguments
        value = reference_loss(*args, **kwargs)
        number = float(value.detach()) if isinstance(value, Tensor) and value.numel() == 1 else math.nan
        log.append(LossCall(a["student_logits"], a["teacher_logits"], a["labels"], a["T"], a["alpha"], given, number))
        return value

    return distillation_loss


@contextmanager
def recording(trace: Trace, watched: Tensor, teacher: Probe | None = None, train_module=None,
              loss_module=None, reference_loss: Callable | None = None):
    """Hooks on ``watched`` (the trained weight), the teacher and every optimizer step; the loss swapped in."""
    log = trace.events
    teacher_params = list(teacher.parameters()) if teacher is not None else []

    def fresh(grad):
        log.append(Backward(grad.detach().clone()))

    def accumulated(param):
        backwards = [e for e in log if isinstance(e, Backward)]
        if backwards and param.grad is not None:
            backwards[-1].accumulated = param.grad.detach().clone()

    def step(optimizer, args, kwargs):
        held = [p for group in optimizer.param_groups for p in group["params"]]
        log.append(Step(None if watched.grad is None else watched.grad.detach().clone(), id(optimizer),
                        any(p is watched for p in held), any(p is q for p in held for q in teacher_params)))

    def teacher_grad(grad):
        log.append(TeacherGrad(bool(grad.detach().abs().sum() > 0)))

    handles = [watched.register_hook(fresh), watched.register_post_accumulate_grad_hook(accumulated),
               register_optimizer_step_pre_hook(step)]
    handles += [p.register_hook(teacher_grad) for p in teacher_params]
    swapped = []
    try:
        if train_module is not None and reference_loss is not None:
            swapped = _swap_loss(train_module, loss_module, _recording_loss(reference_loss, log))
        yield trace
    finally:
        for handle in handles:
            handle.remove()
        for owner, name, value in reversed(swapped):
            setattr(owner, name, value)


def trace_train_model(train_model: Callable, *, epochs: int, batches: int, batch_size: int, seed: int,
                      lr: float = 1e-3) -> Trace:
    """Run the learner's train_model on a probe handed over in eval mode, on a shuffling probe loader."""
    log = Log()
    trace = Trace("train_model", epochs, batches, events=log)
    patterns = class_patterns(seed)
    x, y = pattern_data(batches * batch_size, patterns, seed + 1)
    model = Probe("model", log)
    model.eval()  # as evaluate() leaves it: train_model must switch it back
    loader = ProbeLoader(x, y, batch_size, log, seed=seed + 2)
    trace.model_probe = model
    trace.weight_before = model.linear.weight.detach().clone()
    with recording(trace, model.linear.weight):
        trace.result = train_model(model, loader, epochs=epochs, lr=lr)
    trace.weight_after = model.linear.weight.detach().clone()
    return trace


def trace_distill(distill: Callable, train_module, loss_module, reference_loss: Callable, *, epochs: int,
                  batches: int, batch_size: int, seed: int, T: float, alpha: float, lr: float = 1e-3,
                  teacher_training: bool = False) -> Trace:
    """Run the learner's distill: a zero-initialised probe student handed over in eval mode, and a probe
    teacher whose logits disagree with the labels (class c -> c + 1), handed over in train mode when
    ``teacher_training``, else in eval mode."""
    log = Log()
    trace = Trace("distill", epochs, batches, T=T, alpha=alpha, events=log)
    patterns = class_patterns(seed)
    x, y = pattern_data(batches * batch_size, patterns, seed + 1)
    student = Probe("student", log, weight=torch.zeros(CLASSES, PIXELS))
    teacher = Probe("teacher", log, weight=disagreeing_weight(patterns))
    student.eval()  # as evaluate() leaves it
    teacher.train(teacher_training)
    trace.teacher_handed_training = teacher_training
    loader = ProbeLoader(x, y, batch_size, log, seed=seed + 2)
    trace.model_probe, trace.teacher_probe = student, teacher
    trace.weight_before = student.linear.weight.detach().clone()
    trace.teacher_before = [p.detach().clone() for p in teacher.parameters()]
    with recording(trace, student.linear.weight, teacher, train_module, loss_module, reference_loss):
        trace.result = distill(student, teacher, loader, epochs=epochs, T=T, alpha=alpha, lr=lr)
    trace.weight_after = student.linear.weight.detach().clone()
    trace.teacher_after = [p.detach().clone() for p in teacher.parameters()]
    trace.teacher_grads_after = [None if p.grad is None else p.grad.detach().clone() for p in teacher.parameters()]
    return trace


# ---------------------------------------------------------------------------------------------------
# Reading a trace: each returns one sentence naming what went wrong, or None


def _close(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.allclose(a, b, rtol=GRAD_RTOL, atol=GRAD_ATOL)


def _is_zero(t: Tensor | None) -> bool:
    return t is None or not bool(t.abs().sum() > 0)


def _times(n: int) -> str:
    return {1: "once", 2: "twice"}.get(n, f"{n} times")


def _plural_es(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 'es'}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _owner(trace: Trace) -> str:
    return "model" if trace.function == "train_model" else "student"


def backward_problem(trace: Trace) -> str | None:
    """No loss.backward() at all."""
    if trace.of(Backward):
        return None
    return (f"{trace.function} never calls loss.backward(), so no gradient reaches the {_owner(trace)}'s weights: "
            "for every batch compute the loss, then loss.backward(), then optimizer.step().")


def gradient_problem(trace: Trace) -> str | None:
    """Gradients not cleared before a backward pass, or cleared between backward() and step()."""
    fn, backwards = trace.function, trace.of(Backward)
    if not backwards:
        return backward_problem(trace)
    kept = [i for i, b in enumerate(backwards)
            if b.accumulated is not None and not _close(b.accumulated, b.fresh)]
    wiped, steps = _wiped_steps(trace), trace.of(Step)
    if steps and wiped == len(steps):
        return (f"{fn} clears the gradients between loss.backward() and optimizer.step(), so every step finds them "
                "at zero and changes nothing: call optimizer.zero_grad() before loss.backward() (or after "
                "optimizer.step()), never between them.")
    if wiped:
        return (f"{fn} clears the gradients between loss.backward() and optimizer.step() for {wiped} of its "
                f"{len(steps)} steps, which then change nothing: call optimizer.zero_grad() before loss.backward().")
    if not kept:
        return None
    if len(kept) == len(backwards) - 1:
        return (f"{fn} never clears the gradients, so each loss.backward() adds this batch's gradient to those of all "
                "the batches before it (PyTorch accumulates them in .grad): call optimizer.zero_grad() for every "
                "batch, before loss.backward().")
    per_epoch = trace.epochs_of(Backward)
    firsts = {id(group[0]) for group in per_epoch if group}
    cleared = [b for i, b in enumerate(backwards) if i not in kept]
    if len(per_epoch) > 1 and all(id(b) in firsts for b in cleared):
        return (f"{fn} clears the gradients once per epoch, before the batch loop, so within an epoch each "
                "loss.backward() adds to the gradients of the batches before it: move optimizer.zero_grad() into "
                "the batch loop, before loss.backward().")
    return (f"{fn} left the gradients of an earlier batch in .grad before {len(kept)} of its {len(backwards)} "
            "backward passes, so those steps used the sum of several batches' gradients: call "
            "optimizer.zero_grad() for every batch, before loss.backward().")


def _wiped_steps(trace: Trace) -> int:
    """Steps that found .grad cleared (None or zero) although the backward pass before them brought one."""
    wiped, last = 0, None
    for event in trace.events:
        if isinstance(event, Backward):
            last = event
        elif isinstance(event, Step) and last is not None and not _is_zero(last.fresh):
            wiped += _is_zero(event.grad)
    return wiped


def step_problem(trace: Trace) -> str | None:
    """No optimizer step, steps that miss batches, the wrong parameters, or a new optimizer per batch."""
    fn, owner = trace.function, _owner(trace)
    backwards, steps = trace.of(Backward), trace.of(Step)
    if not backwards:
        return backward_problem(trace)
    moved = not torch.equal(trace.weight_before, trace.weight_after)
    if not steps:
        if moved:
            return (f"{fn} changes the weights without an optimizer: create torch.optim.Adam({owner}.parameters(), "
                    "lr=lr) once and call optimizer.step() after every loss.backward().")
        return (f"{fn} never calls optimizer.step(), so the {owner}'s weights never change: loss.backward() only "
                "computes the gradients, optimizer.step() applies them; call it after every loss.backward().")
    if not any(s.holds_model for s in steps):
        extra = " (it holds the teacher's)" if any(s.holds_teacher for s in steps) else ""
        return (f"{fn} steps an optimizer that does not hold the {owner}'s parameters{extra}, so the {owner} "
                f"never changes: create it with torch.optim.Adam({owner}.parameters(), lr=lr).")
    if len(steps) < len(backwards):
        if len(steps) == len(trace.epochs_of(Backward)) and len(steps) > 0:
            return (f"{fn} calls optimizer.step() once per epoch, after the batch loop, instead of after every "
                    f"batch ({_plural(len(steps), 'step')} for {_plural_es(len(backwards), 'batch')}): indent "
                    "optimizer.step() into the batch loop, right after loss.backward().")
        return (f"{fn} called optimizer.step() {_times(len(steps))} for {len(backwards)} backward passes: call it "
                "once for every batch, right after loss.backward().")
    optimizers = {s.optimizer for s in steps}
    if len(steps) > trace.epochs and len(optimizers) == len(steps):
        return (f"{fn} creates a new optimizer for every batch, so Adam's running averages of the gradients start "
                "over at each step: create the optimizer once, before the loops.")
    if not moved and not _wiped_steps(trace):  # wiped gradients are the gradient check's to report
        return (f"{fn} called optimizer.step() {_times(len(steps))}, but the {owner}'s weights did not change: "
                "check that the optimizer gets the learning rate lr and the gradients are still there at the step.")
    return None


def epochs_problem(trace: Trace) -> str | None:
    """A number of training steps that is not epochs x len(loader)."""
    fn, done, want = trace.function, len(trace.of(Backward)), trace.expected_steps
    if done == want:
        return None
    if done == 0:
        return backward_problem(trace)
    per = trace.batches_per_epoch
    if done % per == 0:
        passes = done // per
        default = "; 3 is the default of epochs: is that number written into the loop?" if passes == 3 else ""
        return (f"{fn}(..., epochs={trace.epochs}) made {_plural_es(passes, 'pass')} over the loader ({done} "
                f"batches, {per} per pass){default} Loop `for epoch in range(epochs):` over the epochs argument.")
    if done == trace.epochs:
        return (f"{fn}(..., epochs={trace.epochs}) trained on one batch per epoch ({done} batches in all, for a "
                f"loader of {per} batches): train on every batch of the loader in each epoch.")
    return (f"{fn}(..., epochs={trace.epochs}) trained on {done} batches; with a loader of {per} batches it should "
            f"train on {want} ({trace.epochs} x {per}): loop over range(epochs), and over every batch of the loader "
            "inside it.")


def mode_problem(trace: Trace, role: str) -> str | None:
    """The trained model (or the student) not in train mode for every batch; it was handed over in eval mode."""
    fn = trace.function
    forwards = trace.forwards(role, grad_enabled=True) or trace.forwards(role)
    if not forwards:
        return (f"{fn} never runs the {role}: compute {role}(x) for every batch." if role == "student" else
                f"{fn} never runs the model: compute model(x) for every batch.")
    evals = sum(not f.training for f in forwards)
    if not evals:
        return None
    how = f".{role}.train()" if role == "student" else ".model.train()"
    call = how[1:]
    if evals == len(forwards):
        return (f"{fn} ran the {role} in eval mode for all {len(forwards)} batches: it was handed over in eval mode "
                f"(as evaluate() leaves it) and never put back in train mode, so dropout and batch norm behave as at "
                f"test time. Call {call} at the start of every epoch.")
    return (f"{fn} ran the {role} in eval mode for {evals} of its {len(forwards)} batches (is something called "
            f"after {call} that switches it to eval mode?): call {call} at the start of every epoch, and keep "
            "eval() for the teacher and for evaluation.")


def history_problem(trace: Trace) -> str | None:
    """The returned value is not the list of each epoch's mean loss."""
    fn, result, epochs = trace.function, trace.result, trace.epochs
    if result is None:
        return (f"{fn} returned None: collect each epoch's mean loss (a Python float, from loss.item()) in a list "
                "and return it.")
    if not isinstance(result, (list, tuple)):
        return (f"{fn} returned {_describe(result)}: it should return a list of {epochs} floats, one mean loss "
                "per epoch.")
    if any(isinstance(v, Tensor) for v in result):
        return (f"{fn} returned a list of tensors: append loss.item() (a Python float), not the loss tensor, which "
                "keeps each batch's whole autograd graph alive.")
    if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in result):
        bad = next(v for v in result if not isinstance(v, numbers.Real) or isinstance(v, bool))
        return f"{fn} returned a list holding {_describe(bad)}: each item should be a float, an epoch's mean loss."
    losses = per_batch_losses(trace)
    if trace.function == "distill" and not trace.of(LossCall) and _history_is_cross_entropy(trace):
        return None  # the mean of the loss it computed (a plain cross-entropy: the teacher checks say so)
    if len(result) != epochs:
        per_batch = sum(len(group) for group in losses)
        if len(result) == per_batch and per_batch > epochs:
            return (f"{fn} returned {len(result)} values, one per batch, for epochs={epochs}: return one value per "
                    "epoch, the mean of that epoch's batch losses.")
        return f"{fn}(..., epochs={epochs}) returned {len(result)} values: return one mean loss per epoch."
    if len(losses) != epochs or any(not group for group in losses):
        return None  # the loop itself is wrong; the other checks say how
    got = [float(v) for v in result]
    means = [sum(g) / len(g) for g in losses]
    if all(math.isclose(a, b, rel_tol=LOSS_RTOL, abs_tol=LOSS_ATOL) for a, b in zip(got, means)):
        return None
    shown = ", ".join(f"{v:.4g}" for v in got)
    wanted = ", ".join(f"{v:.4g}" for v in means)
    for name, values, advice in (
            ("the loss of the last batch of each epoch", [g[-1] for g in losses],
             "average all the epoch's batch losses"),
            ("the sum of each epoch's batch losses", [sum(g) for g in losses], "divide by the number of batches"),
            ("a running total over all epochs", _running(losses), "reset the total at the start of every epoch"),
            ("the loss of the first batch of each epoch", [g[0] for g in losses],
             "average all the epoch's batch losses")):
        if all(math.isclose(a, b, rel_tol=LOSS_RTOL, abs_tol=LOSS_ATOL) for a, b in zip(got, values)):
            return f"{fn} returned {shown}, {name}, instead of each epoch's mean loss ({wanted}): {advice}."
    return (f"{fn} returned {shown}; the mean losses of its epochs' batches were {wanted} (recomputed from the "
            "model's outputs): return, for each epoch, the mean of loss.item() over its batches.")


def _running(losses: list[list[float]]) -> list[float]:
    total, out = 0.0, []
    for group in losses:
        total += sum(group)
        out.append(total / len(group))
    return out


def _describe(value) -> str:
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__} ({value!r:.40})"


def per_batch_losses(trace: Trace) -> list[list[float]]:
    """Each epoch's training losses, recomputed: cross-entropy for train_model, the reference loss for distill."""
    if trace.function == "distill":
        calls = trace.epochs_of(LossCall)
        if any(calls):
            return [[c.value for c in group] for group in calls]
    groups = []
    for event in trace.events:
        if isinstance(event, Pass):
            groups.append((event, []))
        elif isinstance(event, Forward) and event.role == trace.trained and event.grad_enabled and groups:
            groups[-1][1].append(event)
    losses = []
    for p, forwards in groups:
        values = []
        for f in forwards:
            y = next((y for x, y in p.batches if x.shape == f.x.shape and torch.equal(x, f.x)), None)
            if y is None:
                continue
            out = f.out.detach()
            if trace.function == "train_model":
                values.append(float(F.cross_entropy(out, y)))
            elif trace.teacher_probe is not None:
                values.append(float(_reference_kd(out, _teacher_logits_for(trace, f.x), y, trace.T, trace.alpha)))
        if values:
            losses.append(values)
    return losses


def _teacher_logits_for(trace: Trace, x: Tensor) -> Tensor:
    """The teacher's logits for ``x`` as the run computed them, else as the teacher handed over computes them."""
    for f in reversed(trace.forwards("teacher")):
        if _same_x(f.x, x):
            return f.out.detach()
    return original_teacher(trace, x)


def original_teacher(trace: Trace, x: Tensor) -> Tensor:
    """The logits of the teacher as it was handed over (whatever distill did to it), (B, 10)."""
    weight, bias = trace.teacher_before
    return x.flatten(1) @ weight.T + bias


def _reference_kd(s: Tensor, t: Tensor, y: Tensor, T: float, alpha: float) -> Tensor:
    kl = F.kl_div(F.log_softmax(s / T, dim=1), F.log_softmax(t / T, dim=1), reduction="batchmean", log_target=True)
    return alpha * T**2 * kl + (1 - alpha) * F.cross_entropy(s, y)


# -- distill only -----------------------------------------------------------------------------------


def teacher_change_problem(trace: Trace) -> str | None:
    """The teacher's weights changed, or gradients reached them."""
    changed = any(not torch.equal(a, b) for a, b in zip(trace.teacher_before, trace.teacher_after))
    in_optimizer = any(s.holds_teacher for s in trace.of(Step))
    if changed and in_optimizer:
        return ("distill changed the teacher's weights: its optimizer holds the teacher's parameters, so every step "
                "trains the teacher too. Give the optimizer the student's parameters only, "
                "torch.optim.Adam(student.parameters(), lr=lr).")
    if changed:
        return ("distill changed the teacher's weights: the teacher must only provide targets. Do not train it "
                "(no optimizer, no train_model on it); compute its logits under torch.no_grad().")
    reached = any(g.nonzero for g in trace.of(TeacherGrad)) or any(not _is_zero(g) for g in trace.teacher_grads_after)
    if reached:
        return ("distill let gradients reach the teacher: its logits were computed with autograd on, so "
                "loss.backward() runs through the teacher too (wasted work, and a risk of training it). Compute "
                "teacher_logits = teacher(x) inside `with torch.no_grad():` (or .detach() them).")
    return None


def teacher_mode_problem(trace: Trace) -> str | None:
    """The teacher run in train mode."""
    forwards = trace.forwards("teacher")
    if not forwards:
        return teacher_ignored_problem(trace)
    in_train = sum(f.training for f in forwards)
    if not in_train:
        return None
    share = "all its batches" if in_train == len(forwards) else f"{in_train} of its {len(forwards)} batches"
    if trace.teacher_handed_training:
        how = f"distill ran the teacher in train mode, as train_model leaves it, for {share}"
    else:
        how = f"distill switched the teacher to train mode (it was handed over in eval mode) for {share}"
    return (f"{how}: dropout makes its soft targets noisy and batch norm keeps changing its statistics. Call "
            "teacher.eval() before the loop, and train() on the student only.")


def teacher_ignored_problem(trace: Trace) -> str | None:
    """The teacher never run, or its logits never given to the loss."""
    calls = trace.of(LossCall)
    if not trace.forwards("teacher"):
        return ("distill never runs the teacher, so the student learns from the labels alone: compute "
                "teacher_logits = teacher(x) for each batch (under torch.no_grad()) and pass them to "
                "distillation_loss(student_logits, teacher_logits, y, T=T, alpha=alpha).")
    if calls and all(_is_student_output(trace, c.teacher_logits) for c in calls):
        return ("distill passes the student's own logits as the teacher's to distillation_loss, so the teacher is "
                "ignored: pass teacher_logits = teacher(x), computed under torch.no_grad().")
    if not calls and trace.function == "distill" and _history_is_cross_entropy(trace):
        return ("distill trains the student on the labels alone (its losses are the plain cross-entropy), so the "
                "teacher is ignored: use distillation_loss(student(x), teacher_logits, y, T=T, alpha=alpha).")
    return None


def _is_student_output(trace: Trace, value) -> bool:
    if not isinstance(value, Tensor):
        return False
    for f in trace.forwards("student"):
        if value is f.out or (value.shape == f.out.shape and torch.equal(value.detach(), f.out.detach())):
            return True
    return False


def _history_is_cross_entropy(trace: Trace) -> bool:
    result = trace.result
    if not isinstance(result, (list, tuple)) or len(result) != trace.epochs:
        return False
    if not all(isinstance(v, numbers.Real) for v in result):
        return False
    ce = Trace("train_model", trace.epochs, trace.batches_per_epoch, events=Log(
        Forward("model", e.x, e.out, e.training, e.grad_enabled) if isinstance(e, Forward) and e.role == "student"
        else e for e in trace.events))
    losses = per_batch_losses(ce)
    if len(losses) != trace.epochs:
        return False
    return all(math.isclose(float(v), sum(g) / len(g), rel_tol=LOSS_RTOL, abs_tol=LOSS_ATOL)
               for v, g in zip(result, losses))


def same_batch_problem(trace: Trace) -> str | None:
    """The soft targets given to the loss are not the teacher's logits for the student's batch."""
    ignored = teacher_ignored_problem(trace)
    if ignored:
        return ignored
    calls = trace.of(LossCall)
    teachers = trace.forwards("teacher")
    if calls:
        inputs = [f.x for f in trace.forwards("student")]
        other = previous = probabilities = unknown = 0
        for call in calls:
            x, t = _student_input(trace, call.student_logits), call.teacher_logits
            if x is None or not isinstance(t, Tensor) or t.shape != (x.shape[0], CLASSES):
                continue
            t = t.detach().float()
            if any(_same_x(f.x, x) and _near(t, f.out) for f in teachers):
                continue
            matches = [f for f in teachers if _near(t, f.out)]
            if matches:
                other += 1
                i = next((k for k, xi in enumerate(inputs) if xi is x), None)
                previous += bool(i) and any(_same_x(f.x, inputs[i - 1]) for f in matches)
            elif any(_near(t, F.softmax(f.out.detach() / T, dim=1)) for f in teachers for T in (1.0, trace.T)):
                probabilities += 1
            else:
                unknown += 1
        if probabilities:
            return ("distill gives distillation_loss the teacher's probabilities (a softmax of its logits) as "
                    "teacher_logits; distillation_loss applies the softmax itself: pass the raw teacher logits, "
                    "teacher(x).")
        if other and previous == other and not unknown:
            return ("distill gives distillation_loss the teacher's logits for the previous batch: compute "
                    "teacher_logits = teacher(x) inside the loop, for the same x that the student sees.")
        if other:
            return _other_batch_message(trace, other, len(calls))
        if unknown:
            return (f"for {unknown} of {len(calls)} batches, distill gave distillation_loss teacher logits that are "
                    "not the teacher's output (were they changed on the way?): pass teacher_logits = teacher(x) as "
                    "it is, for the same x as student(x).")
        return None
    # distillation_loss was not called by name: compare the teacher's inputs with the student's
    student_inputs = trace.forwards("student", grad_enabled=True)
    mismatched = sum(not any(_same_x(t.x, f.x) for t in teachers) for f in student_inputs)
    return _other_batch_message(trace, mismatched, len(student_inputs)) if mismatched else None


def _same_x(a: Tensor, b: Tensor) -> bool:
    return a.shape == b.shape and torch.equal(a, b)


def _near(a: Tensor, b: Tensor) -> bool:
    b = b.detach().float()
    return a.shape == b.shape and torch.allclose(a, b, rtol=1e-4, atol=1e-5)


def _other_batch_message(trace: Trace, wrong: int, total: int) -> str:
    first_student = next((i for i, e in enumerate(trace.events)
                          if isinstance(e, Forward) and e.role == "student"), None)
    teacher_first = [i for i, e in enumerate(trace.events) if isinstance(e, Forward) and e.role == "teacher"]
    separate = first_student is not None and teacher_first and all(i < first_student for i in teacher_first)
    if separate:
        return (f"distill computes the teacher's logits in a separate pass over the loader, before training; the "
                f"loader shuffles anew on every pass, so for {wrong} of {total} batches the soft targets belong to "
                "other images than the student's: compute teacher_logits = teacher(x) inside the loop, for the same "
                "x that the student sees.")
    return (f"for {wrong} of {total} batches, distill gave distillation_loss teacher logits that are not the "
            "teacher's output for the batch the student saw: compute teacher_logits = teacher(x) inside the loop, "
            "for the same x as student(x).")


def _student_input(trace: Trace, student_logits) -> Tensor | None:
    if not isinstance(student_logits, Tensor):
        return None
    forwards = trace.forwards("student")
    for f in forwards:
        if student_logits is f.out:
            return f.x
    for f in forwards:
        if student_logits.shape == f.out.shape and torch.equal(student_logits.detach(), f.out.detach()):
            return f.x
    return None


def passed_on_problem(trace: Trace) -> str | None:
    """T and alpha not passed on to distillation_loss (or other values passed)."""
    calls = trace.of(LossCall)
    T, alpha = trace.T, trace.alpha
    if not calls:
        return None  # judged by the returned losses instead (see losses_match)
    bad = [c for c in calls if not (_number_is(c.T, T) and _number_is(c.alpha, alpha))]
    if not bad:
        return None
    c = bad[0]
    missing = [n for n in ("T", "alpha") if n not in c.given]
    if missing == ["T", "alpha"]:
        return (f"distill calls distillation_loss without T and alpha, so it always uses the defaults T={DEFAULT_T:g}, "
                f"alpha={DEFAULT_ALPHA:g} (called with T={T:g}, alpha={alpha:g}): pass them on, "
                "distillation_loss(student_logits, teacher_logits, y, T=T, alpha=alpha).")
    if len(missing) == 1:
        name = missing[0]
        default = DEFAULT_T if name == "T" else DEFAULT_ALPHA
        return (f"distill calls distillation_loss without {name}, so it always uses the default {name}={default:g} "
                f"(called with {name}={T if name == 'T' else alpha:g}): pass {name}={name} on too.")
    if _number_is(c.T, alpha) and _number_is(c.alpha, T):
        return (f"distill passes T and alpha to distillation_loss the wrong way round (T={c.T}, alpha={c.alpha}): "
                "pass them by name, distillation_loss(student_logits, teacher_logits, y, T=T, alpha=alpha).")
    wrong = [f"{n}={getattr(c, n)!r} instead of {v:g}" for n, v in (("T", T), ("alpha", alpha))
             if not _number_is(getattr(c, n), v)]
    return (f"distill was called with T={T:g}, alpha={alpha:g} but passed {' and '.join(wrong)} to "
            "distillation_loss: pass the arguments on unchanged, T=T, alpha=alpha.")


def _number_is(value, want: float) -> bool:
    if isinstance(value, Tensor) and value.numel() == 1:
        value = value.item()
    return isinstance(value, numbers.Real) and math.isclose(float(value), want, rel_tol=1e-6, abs_tol=1e-9)


def losses_match(trace: Trace) -> bool:
    """distill's returned losses are the reference distillation losses (with its T and alpha) of its batches."""
    result = trace.result
    if not isinstance(result, (list, tuple)) or len(result) != trace.epochs:
        return False
    if not all(isinstance(v, numbers.Real) and math.isfinite(float(v)) for v in result):
        return False
    losses = per_batch_losses(trace)
    return len(losses) == trace.epochs and all(
        math.isclose(float(v), sum(g) / len(g), rel_tol=LOSS_RTOL, abs_tol=LOSS_ATOL) for v, g in zip(result, losses))


def distill_problems(trace: Trace) -> list[str]:
    """Every mistake the trace shows, the most telling first (for outcome checks that fail)."""
    finders = [teacher_ignored_problem, passed_on_problem, same_batch_problem, backward_problem, gradient_problem,
               step_problem, teacher_change_problem, teacher_mode_problem, epochs_problem,
               lambda t: mode_problem(t, "student")]
    found = []
    for finder in finders:
        problem = finder(trace)
        if problem and problem not in found:
            found.append(problem)
    return found


def loop_problems(trace: Trace) -> list[str]:
    """Every mistake a train_model trace shows."""
    found = []
    for problem in (backward_problem(trace), gradient_problem(trace), step_problem(trace), epochs_problem(trace),
                    mode_problem(trace, "model")):
        if problem and problem not in found:
            found.append(problem)
    return found


def agreement(trace: Trace) -> tuple[float, float, int]:
    """After a distill run: the fraction of its training images on which the student's prediction equals
    the teacher's, the fraction on which it equals the label, and the number of images."""
    batches = trace.of(Pass)[0].batches if trace.of(Pass) else []
    if not batches:
        return 0.0, 0.0, 0
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    predicted = trace.model_probe.quietly(x).argmax(dim=1)  # (N,)
    taught = original_teacher(trace, x).argmax(dim=1)  # (N,)
    return float((predicted == taught).float().mean()), float((predicted == y).float().mean()), len(y)
