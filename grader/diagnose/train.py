"""What a learner's training loop did, watched with probes and hooks, and the mistake that explains it.

The values a loop returns say little about how it trained, so the checks of the topic `train` have the
learner's ``train_model`` or ``distill`` run, in the worker, on probe models (one Linear layer on tiny
synthetic images) and a probe loader (``grader.worker.tracing``, which records every event on the
way). The worker sends the record as plain data; ``rebuild_trace`` here checks it (types, shapes,
indices) and rebuilds a ``Trace``:

- each forward pass of a probe (its input, its output, its weight and bias then, train or eval mode,
  autograd on or off);
- each backward pass reaching the trained model's weight: the gradient it brought and what ``.grad``
  held once it was added in;
- each ``optimizer.step()``: the weight's ``.grad`` at that moment and which parameters the optimizer
  holds;
- each switch of the teacher between train and eval mode (for the wording of ``teacher_mode_problem``);
- each pass over the loader, each gradient reaching the teacher, and each call of
  ``distillation_loss`` (replaced, in the learner's train module, by a stand-in whose value and
  gradients the judge computes with the reference: ``LossOracle``, the "kd" callback).

The ``*_problem`` functions read a trace and return one sentence naming the mistake (what the loop
did and what to do instead), or None when the loop did that part right. They name a mistake only
when the trace shows it: any loop that trains correctly, however it is written, gets None.

Trust. The record comes from the process that ran the learner's code, so it may shape a message but
must never make a check pass on its own word. What the judge knows or recomputes itself:

- the probe data, the loader's batches (their order included) and the teacher's weights: regenerated
  here from the same seeds (``grader.worker.tracing.probe_data``); a pass sends only how many batches
  it gave out;
- each loss call's arguments, value and gradients: the judge received the arguments and computed the
  rest in the "kd" callback (``LossOracle``);
- each forward's output, from its input and the weight and bias recorded with it (``forward_doubt``);
- each step's gradient: it must be a gradient of the batch of the forward before it alone, i.e. lie
  in the span of that batch's inputs (any loss of a Linear layer's output has a gradient
  ``dL/dout^T @ x``), which an accumulated gradient does not (``gradient_doubt``);
- that the weights changed after every batch (``step_doubt``) and that the batches trained on are
  epochs x len(loader) distinct batches of the judge's own loader passes (``epochs_doubt``);
- that the teacher ran with its original weights (``teacher_doubt``) and that each loss call's
  logits came from a student forward (``same_batch_doubt``);
- the returned per-epoch mean losses: recomputed from the outputs and the judge's labels and losses;
- the agreement of the distilled student with the teacher and with the labels: computed here from the
  final weight and bias, on the judge's images, against the judge's teacher (``agreement``).

What rests on the worker's observations only: train or eval mode (a Linear probe's outputs are the
same in both, so ``mode_problem`` and ``teacher_mode_problem`` trust the recorded flags), whether
autograd was on and whether gradients reached the teacher (``teacher_change_problem``'s second half),
which parameters an optimizer holds and how many optimizers there were, the arguments a loss call was
given by name (``given``, which only words a message), and the final weights themselves (the judge
cannot replay Adam's steps, so the agreement is computed from the weights the worker reports).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from grader.grading.checking import CheckFailed
from grader.worker import scenarios
from grader.worker.tracing import loader_seed, probe_data
from grader.worker.wire import Opaque

CLASSES = 10
IMAGE = (1, 28, 28)
PIXELS = 28 * 28
DEFAULT_T, DEFAULT_ALPHA = 2.0, 0.7  # the defaults of distill's and distillation_loss's signatures
# Two gradients are "the same" within float32 rounding of a sum of a few terms.
GRAD_RTOL, GRAD_ATOL = 1e-4, 1e-7
# A returned mean loss matches the one we recompute from the recorded outputs within float32 rounding.
LOSS_RTOL, LOSS_ATOL = 1e-4, 1e-6
# A step's gradient lies in the span of its batch's inputs up to float32 rounding (~1e-7 of its size);
# one that also holds an earlier batch's gradient is off it by a large fraction (~0.3 on the probes).
SPAN_RTOL = 1e-3
# What a record may hold (far above what a loop on the probes produces): events, passes, loss calls.
MAX_EVENTS, MAX_PASSES, MAX_CALLS, MAX_ROWS = 20_000, 100, 5_000, 4_096


# ---------------------------------------------------------------------------------------------------
# What is recorded


@dataclass
class Pass:
    """One pass over the loader (an epoch, if the loop is right): the batches it yielded (the judge's own)."""
    batches: list[tuple[Tensor, Tensor]] = field(default_factory=list)


@dataclass
class Forward:
    role: str  # "model" (train_model), "student" or "teacher"
    x: Tensor  # a copy of the input batch
    out: Tensor  # the output as returned: loss calls that received this very object are rebuilt to hold it
    training: bool  # the probe and all its submodules in train mode
    grad_enabled: bool
    weight: Tensor | None = None  # the probe's weight and bias when it ran
    bias: Tensor | None = None


@dataclass
class Backward:
    fresh: Tensor  # the gradient this backward pass brought to the watched weight
    accumulated: Tensor | None = None  # .grad once it was added in


@dataclass
class Step:
    grad: Tensor | None  # the watched weight's .grad when optimizer.step() began
    optimizer: int  # which optimizer (by order of its first step)
    holds_model: bool  # the optimizer holds the trained model's (student's) weight
    holds_teacher: bool


@dataclass
class TeacherGrad:
    """A gradient reached one of the teacher's parameters."""
    nonzero: bool


@dataclass
class Mode:
    """distill switched the teacher between train and eval mode (teacher.train(), teacher.eval())."""
    role: str
    training: bool


@dataclass
class LossCall:
    student_logits: Any
    teacher_logits: Any
    labels: Any
    T: Any
    alpha: Any
    given: frozenset  # the arguments the caller passed (the rest took their defaults)
    value: float
    by_name: frozenset = frozenset()  # those it passed by keyword


class Log(list):
    """The events of one run, in order."""


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
    bias_after: Tensor | None = None
    teacher_before: list[Tensor] = field(default_factory=list)  # the judge's own: weight, bias
    teacher_after: list[Tensor] = field(default_factory=list)
    teacher_grads_after: list[Tensor | None] = field(default_factory=list)
    teacher_handed_training: bool = False
    images: Tensor | None = None  # the judge's own probe images and labels, (N, 1, 28, 28) and (N,)
    labels: Tensor | None = None

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
# The loss the judge computes for the worker (callback "kd")


@dataclass
class JudgedCall:
    """One call of the stand-in distillation_loss, as the judge received and answered it."""
    student_logits: Tensor
    teacher_logits: Tensor
    labels: Any
    T: float
    alpha: float
    value: float


class LossOracle:
    """The judge's handler of the worker's "kd" callback: the reference distillation_loss of one call's
    arguments, its value and its gradients with respect to the student's and the teacher's logits.

    Registered in ``WorkerProcess.callbacks`` for the duration of one distill run; ``calls`` is what it
    answered, in order, the judge's own record of every loss call. An error it raises reaches the
    learner's code as a RuntimeError with its message, where their distill called distillation_loss.
    """

    def __init__(self, reference_loss: Callable):
        self.reference_loss = reference_loss
        self.calls: list[JudgedCall] = []

    def __call__(self, message: dict) -> dict:
        if len(self.calls) >= MAX_CALLS:
            raise ValueError(f"distillation_loss was called more than {MAX_CALLS:,} times in one run")
        s = _logits_argument(message.get("student_logits"), "student_logits")
        t = _logits_argument(message.get("teacher_logits"), "teacher_logits")
        labels = message.get("labels")
        if type(labels) is not torch.Tensor or labels.numel() > MAX_ROWS:
            raise TypeError(f"distillation_loss expects labels as a tensor of class indices, not {_plain_kind(labels)}")
        T, alpha = _number_argument(message.get("T"), "T"), _number_argument(message.get("alpha"), "alpha")
        s_, t_ = s.detach().clone().requires_grad_(True), t.detach().clone().requires_grad_(True)
        try:
            with torch.enable_grad():
                value = self.reference_loss(s_, t_, labels, T=T, alpha=alpha)
                if type(value) is not torch.Tensor or value.numel() != 1:
                    raise ValueError("the loss is not a scalar")
                value = value.reshape(())
                gs, gt = torch.autograd.grad(value, (s_, t_), allow_unused=True)
        except (RuntimeError, ValueError, TypeError, IndexError) as err:
            text = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
            raise ValueError(f"distillation_loss cannot be computed on these arguments (student_logits of shape "
                             f"{tuple(s.shape)}, teacher_logits of shape {tuple(t.shape)}, labels of shape "
                             f"{tuple(labels.shape)}): {text}") from None
        gs = torch.zeros_like(s) if gs is None else gs.detach()
        gt = torch.zeros_like(t) if gt is None else gt.detach()
        self.calls.append(JudgedCall(s.detach(), t.detach(), labels, T, alpha, float(value.detach())))
        return {"value": value.detach(), "student_grad": gs, "teacher_grad": gt}


def _plain_kind(value) -> str:
    if isinstance(value, Opaque):
        return f"a {value.type_name}"
    return "None" if value is None else f"a {type(value).__name__}"


def _logits_argument(value, name: str) -> Tensor:
    if type(value) is not torch.Tensor or not value.is_floating_point():
        what = f"a tensor of {value.dtype}" if type(value) is torch.Tensor else _plain_kind(value)
        raise TypeError(f"distillation_loss expects {name} as a float tensor of logits, not {what}")
    if value.numel() > MAX_ROWS * CLASSES:
        raise ValueError(f"distillation_loss got {name} of shape {tuple(value.shape)}, far larger than a batch")
    return value


def _number_argument(value, name: str) -> float:
    if type(value) is torch.Tensor and value.numel() == 1 and value.dtype != torch.bool:
        return float(value)
    if type(value) in (int, float):
        return float(value)
    raise TypeError(f"distillation_loss expects {name} as a number, not {_plain_kind(value)}")


# ---------------------------------------------------------------------------------------------------
# Rebuilding a trace from the worker's plain data


class MalformedTrace(CheckFailed):
    """The worker's record of a run is not what the recorder writes: no check can be judged on it."""


def _malformed(function: str, detail: str) -> MalformedTrace:
    return MalformedTrace(f"the record of your {function}'s run on the grader's probes is malformed ({detail}), so "
                          "the grader cannot judge it. The probes record what your loop does to them: does your code "
                          "change the model, the loader or the grader's hooks in ways a training loop does not?")


class _Reader:
    """Checks each value of the plain record as it is read; the first bad one raises MalformedTrace."""

    def __init__(self, function: str):
        self.function = function

    def fail(self, detail: str):
        raise _malformed(self.function, detail)

    def tensor(self, value, shape: tuple | None, what: str, optional: bool = False) -> Tensor | None:
        if value is None and optional:
            return None
        if type(value) is not torch.Tensor or value.dtype != torch.float32:
            self.fail(f"{what} is not a float32 tensor")
        if shape is not None and tuple(value.shape) != shape:
            self.fail(f"{what} has shape {tuple(value.shape)}, not {shape}")
        return value.detach()

    def flag(self, value, what: str) -> bool:
        if type(value) is not bool:
            self.fail(f"{what} is not a boolean")
        return value

    def index(self, value, limit: int, what: str, optional: bool = False) -> int | None:
        if value is None and optional:
            return None
        if type(value) is not int or not 0 <= value < limit:
            self.fail(f"{what} is not an index below {limit}")
        return value


def _result(value):
    """The returned value as the reading expects it: numpy scalars (which the wire describes) as floats."""
    def plain(v):
        if isinstance(v, Opaque) and v.number is not None and v.type_name.startswith("numpy.") \
                and v.type_name != "numpy.ndarray":
            return v.number
        return v
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain(v) for v in value)
    return plain(value)


def loader_passes(x: Tensor, y: Tensor, batch_size: int, seed: int, passes: int) -> list[list[tuple[Tensor, Tensor]]]:
    """The batches of the probe loader's first ``passes`` passes, as the worker's loader gave them out."""
    batches = scenarios.Batches(x, y, batch_size, shuffle=True, seed=loader_seed(seed))
    return [list(batches) for _ in range(passes)]


def rebuild_trace(plain, *, function: str, epochs: int, batches: int, batch_size: int, seed: int,
                  T: float = DEFAULT_T, alpha: float = DEFAULT_ALPHA, teacher_training: bool = False,
                  calls: list[JudgedCall] | None = None) -> Trace:
    """The Trace of one run from the worker's plain record; the probe data, the loader's batches and the
    teacher are the judge's own, the loss calls' values those the judge computed (``calls``).
    Raises MalformedTrace when the record is not what the recorder writes."""
    read = _Reader(function)
    calls = calls or []
    if not isinstance(plain, dict) or not isinstance(plain.get("events"), list):
        read.fail("it holds no list of events")
    raw = plain["events"]
    if len(raw) > MAX_EVENTS:
        read.fail(f"more than {MAX_EVENTS:,} events")
    x_all, y_all, teacher_weight = probe_data(batches, batch_size, seed)
    passes = [e for e in raw if isinstance(e, dict) and e.get("kind") == "pass"]
    if len(passes) > MAX_PASSES:
        read.fail(f"more than {MAX_PASSES} passes over the loader")
    regenerated = iter(loader_passes(x_all, y_all, batch_size, seed, len(passes)))
    weight_shape, bias_shape = (CLASSES, PIXELS), (CLASSES,)
    trace = Trace(function, epochs, batches, T=T, alpha=alpha, teacher_handed_training=teacher_training,
                  images=x_all, labels=y_all)
    forwards: list[Forward] = []
    roles = ("model",) if function == "train_model" else ("student", "teacher")
    for n, e in enumerate(raw):
        if not isinstance(e, dict):
            read.fail(f"event {n + 1} is not a record")
        kind = e.get("kind")
        if kind == "pass":
            count = e.get("batches")
            if type(count) is not int or not 0 <= count <= batches:
                read.fail(f"pass {n + 1} gave out {count!r} batches")
            trace.events.append(Pass(next(regenerated)[:count]))
        elif kind == "forward":
            if e.get("role") not in roles:
                read.fail(f"a forward pass of an unknown model {e.get('role')!r}")
            x = e.get("x")
            if type(x) is not torch.Tensor or x.dtype != torch.float32 or x.ndim < 2 or len(x) > MAX_ROWS \
                    or x[:1].numel() != PIXELS:
                read.fail("a forward pass's input is not a batch of float32 images")
            out = read.tensor(e.get("out"), (len(x), CLASSES), "a forward pass's output")
            forward = Forward(e["role"], x.detach(), out, read.flag(e.get("training"), "train mode"),
                              read.flag(e.get("grad_enabled"), "grad mode"),
                              read.tensor(e.get("weight"), weight_shape, "a weight"),
                              read.tensor(e.get("bias"), bias_shape, "a bias"))
            forwards.append(forward)
            trace.events.append(forward)
        elif kind == "backward":
            trace.events.append(Backward(read.tensor(e.get("fresh"), weight_shape, "a gradient"),
                                         read.tensor(e.get("accumulated"), weight_shape, "a gradient", True)))
        elif kind == "step":
            trace.events.append(Step(read.tensor(e.get("grad"), weight_shape, "a step's gradient", True),
                                     read.index(e.get("optimizer"), MAX_EVENTS, "an optimizer"),
                                     read.flag(e.get("holds_model"), "holds_model"),
                                     read.flag(e.get("holds_teacher"), "holds_teacher")))
        elif kind == "mode" and function == "distill":
            if e.get("role") != "teacher":
                read.fail(f"a mode switch of an unknown model {e.get('role')!r}")
            trace.events.append(Mode("teacher", read.flag(e.get("training"), "train mode")))
        elif kind == "teacher_grad" and function == "distill":
            trace.events.append(TeacherGrad(read.flag(e.get("nonzero"), "nonzero")))
        elif kind == "loss_call" and function == "distill":
            done = len(trace.of(LossCall))
            if e.get("call") != done or done >= len(calls):
                read.fail("a loss call the judge did not answer")
            call = calls[done]
            given = e.get("given")
            names = ("student_logits", "teacher_logits", "labels", "T", "alpha")
            if not isinstance(given, list) or not all(g in names for g in given):
                read.fail("a loss call's arguments")
            s = _linked(call.student_logits, forwards, read.index(e.get("student"), len(forwards), "a forward", True))
            t = _linked(call.teacher_logits, forwards, read.index(e.get("teacher"), len(forwards), "a forward", True))
            by_name = e.get("by_name", [])
            if not isinstance(by_name, list) or not all(g in given for g in by_name):
                read.fail("a loss call's keyword arguments")
            trace.events.append(LossCall(s, t, call.labels, call.T, call.alpha, frozenset(given), call.value,
                                         frozenset(by_name)))
        else:
            read.fail(f"event {n + 1} is of an unknown kind {kind!r}")
    if len(trace.of(LossCall)) != len(calls):
        read.fail(f"{len(calls)} loss calls were answered, {len(trace.of(LossCall))} recorded")
    trace.result = _result(plain.get("result"))
    trace.weight_before = read.tensor(plain.get("weight_before"), weight_shape, "a weight (before)")
    trace.weight_after = read.tensor(plain.get("weight_after"), weight_shape, "a weight (after)")
    trace.bias_after = read.tensor(plain.get("bias_after"), bias_shape, "a bias (after)")
    if function == "distill":
        trace.teacher_before = [teacher_weight, torch.zeros(CLASSES)]
        after, grads = plain.get("teacher_after"), plain.get("teacher_grads_after")
        if not isinstance(after, list) or len(after) != 2 or not isinstance(grads, list) or len(grads) != 2:
            read.fail("the teacher's parameters after the run")
        trace.teacher_after = [read.tensor(after[0], weight_shape, "the teacher's weight"),
                               read.tensor(after[1], bias_shape, "the teacher's bias")]
        trace.teacher_grads_after = [read.tensor(grads[0], weight_shape, "the teacher's gradient", True),
                                     read.tensor(grads[1], bias_shape, "the teacher's gradient", True)]
    return trace


def _linked(received: Tensor, forwards: list[Forward], index: int | None):
    """The logits a loss call received: the forward's own output object when the worker saw that very object
    passed and the values agree (so that identity comparisons hold), else the tensor the judge received."""
    if index is not None:
        out = forwards[index].out
        if out.shape == received.shape and torch.equal(out, received.to(out.dtype)):
            return out
    return received


# ---------------------------------------------------------------------------------------------------
# What the judge confirms itself: each returns one sentence when the record does not hold up, or None


def _unconfirmed(trace: Trace, detail: str) -> str:
    return (f"the grader could not confirm the record of your {trace.function}'s run on its probes: {detail}. It "
            "recomputes what it can of the run (each output from its weights, each step's gradient from its batch) "
            "and a loop that trains the probe as asked always matches: does your code change the model, its "
            "gradients or the loader in ways a training loop does not?")


def forward_doubt(trace: Trace) -> str | None:
    """Every forward's output is what its recorded weight and bias give for its input."""
    for i, f in enumerate(trace.of(Forward)):
        want = F.linear(f.x.flatten(1), f.weight, f.bias)
        if not (f.out.shape == want.shape and torch.allclose(f.out, want, rtol=1e-4, atol=1e-5)):
            return _unconfirmed(trace, f"the output of forward pass {i + 1} (of the {f.role}) is not what its weights "
                                       "give for its input")
    return None


def _outside_span(grad: Tensor, x: Tensor) -> float:
    """How far ``grad`` (10, 784) is from having each row in the span of the rows of ``x`` (B, 784), relative."""
    g, basis = grad.double(), torch.linalg.qr(x.double().T).Q  # (784, B), orthonormal columns
    residual = g - (g @ basis) @ basis.T
    return float(residual.norm() / g.norm().clamp_min(1e-30))


def gradient_doubt(trace: Trace) -> str | None:
    """Each step with a gradient saw the gradient of the batch of the last forward before it, alone."""
    last, steps = None, 0
    for event in trace.events:
        if isinstance(event, Forward) and event.role == trace.trained and event.grad_enabled:
            last = event
        elif isinstance(event, Step):
            steps += 1
            if _is_zero(event.grad):
                continue  # a step that found no gradient: the reading says so (gradient_problem)
            if last is None:
                return _unconfirmed(trace, f"step {steps} found a gradient before the {trace.trained} ever ran")
            if not _outside_span(event.grad, last.x.flatten(1)) <= SPAN_RTOL:  # NaN: not confirmed either
                return _unconfirmed(trace, f"step {steps} found a gradient that is not the gradient of the batch the "
                                           f"{trace.trained} ran on just before it (it holds other images' gradients)")
    return None


def _batch_groups(trace: Trace) -> list[Forward]:
    """The first of each run of consecutive grad-enabled forwards of the trained model on the same input."""
    firsts: list[Forward] = []
    for f in trace.forwards(trace.trained, grad_enabled=True):
        if not firsts or not _same_x(firsts[-1].x, f.x):
            firsts.append(f)
    return firsts


def step_doubt(trace: Trace) -> str | None:
    """The trained weights changed between every two training batches, and after the last one."""
    firsts = _batch_groups(trace)
    weights = [f.weight for f in firsts] + [trace.weight_after]
    for i in range(len(firsts)):
        if torch.equal(weights[i], weights[i + 1]):
            after = "after its last batch" if i == len(firsts) - 1 else f"between batches {i + 1} and {i + 2}"
            return _unconfirmed(trace, f"the {trace.trained}'s weights did not change {after}, so no step was taken "
                                       "there")
    return None


def epochs_doubt(trace: Trace) -> str | None:
    """The batches trained on are epochs x len(loader) distinct batches of the judge's own loader passes."""
    passes = [p.batches for p in trace.of(Pass)]
    seen = set()
    for i, f in enumerate(_batch_groups(trace)):
        where = next(((k, j) for k, batches in enumerate(passes) for j, (x, _) in enumerate(batches)
                      if _same_x(x, f.x)), None)
        if where is None:
            return _unconfirmed(trace, f"training batch {i + 1} is not a batch the loader gave out")
        seen.add(where)
    if len(seen) != trace.expected_steps:
        return _unconfirmed(trace, f"the {trace.trained} trained on {len(seen)} of the loader's batches, not "
                                   f"{trace.expected_steps}")
    return None


def teacher_doubt(trace: Trace) -> str | None:
    """The teacher ran with the weights it was handed over with, every time."""
    weight, bias = trace.teacher_before
    for f in trace.forwards("teacher"):
        if not (torch.equal(f.weight, weight) and torch.equal(f.bias, bias)):
            return _unconfirmed(trace, "the teacher ran with other weights than those it was handed over with")
    return None


def same_batch_doubt(trace: Trace) -> str | None:
    """Each loss call's student logits are the output of one of the student's forward passes."""
    for i, call in enumerate(trace.of(LossCall)):
        if _student_input(trace, call.student_logits) is None:
            return _unconfirmed(trace, f"the student logits of loss call {i + 1} are not the output of a forward pass "
                                       "of the student")
    return None


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
        default = "; 3 is the default of epochs: is that number written into the loop?" if passes == 3 else "."
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
            return (f"{fn} returned {_plural(len(result), 'value')}, one per batch, for epochs={epochs}: return one value per "
                    "epoch, the mean of that epoch's batch losses.")
        return (f"{fn}(..., epochs={epochs}) returned {_plural(len(result), 'value')}: return one mean loss per "
                "epoch.")
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
            elif trace.teacher_before:
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


# Why a teacher must run in eval mode, said in every message about it.
TEACHER_TRAIN_MODE = ("In train mode its dropout layers drop random units on every forward pass, so its soft targets "
                      "are noisy, and its batch-norm layers update their running statistics on every forward pass, "
                      "even under torch.no_grad(), so the teacher keeps changing while the student learns from it")


def teacher_mode_problem(trace: Trace) -> str | None:
    """The teacher run in train mode: never put in eval mode (it comes in train mode, as train_model leaves it),
    switched to train mode by distill, or put in eval mode only after some batches."""
    forwards = trace.forwards("teacher")
    if not forwards:
        return teacher_ignored_problem(trace)
    in_train = sum(f.training for f in forwards)
    if not in_train:
        return None
    share = "all its batches" if in_train == len(forwards) else f"{in_train} of its {len(forwards)} batches"
    switches = [m for m in trace.of(Mode) if m.role == "teacher"]
    fix = "Call teacher.eval() before the loop"
    if any(m.training for m in switches):
        how = f"distill puts the teacher in train mode (teacher.train()), and it ran so for {share}"
        fix += (" and never call teacher.train() in distill: the student is the only model that trains, so "
                "student.train() is the only train() call distill needs.")
    elif any(not m.training for m in switches):
        how = (f"distill calls teacher.eval() only after the teacher has run in train mode (as train_model leaves "
               f"it) for {share}")
        fix += ", before the teacher's first forward pass."
    elif trace.teacher_handed_training:
        how = (f"distill never calls teacher.eval(): the teacher comes in train mode, as train_model leaves it, and "
               f"stayed so for {share}")
        fix += " (once is enough; every epoch is fine too), and student.train() for the student only."
    else:
        how = f"distill switched the teacher to train mode (it was handed over in eval mode) for {share}"
        fix += ", and train() on the student only."
    return f"{how}. {TEACHER_TRAIN_MODE}. {fix}"


def teacher_ignored_problem(trace: Trace) -> str | None:
    """The teacher never run, or its logits never given to the loss."""
    calls = trace.of(LossCall)
    if not trace.forwards("teacher"):
        return ("distill never runs the teacher, so the student learns from the labels alone: compute "
                "teacher_logits = teacher(x) for each batch (under torch.no_grad()) and pass them to "
                "distillation_loss(student_logits, teacher_logits, y, T=T, alpha=alpha).")
    if calls and all(_is_student_output(trace, c.teacher_logits) and _is_teacher_output(trace, c.student_logits)
                     for c in calls):
        return swapped_arguments_message(calls[0].by_name)
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


def swapped_arguments_message(by_name: frozenset) -> str:
    """The teacher's logits given as student_logits and the student's as teacher_logits (``by_name``: the
    arguments the call gave by keyword)."""
    if {"student_logits", "teacher_logits"} <= by_name:
        how = ("distill gives distillation_loss the teacher's logits as student_logits= and the student's logits as "
               "teacher_logits=, the two names swapped")
    else:
        how = ("distill passes the arguments of distillation_loss in the wrong order: distillation_loss("
               "teacher_logits, student(x), y, ...) puts the teacher's logits first, where student_logits stands, "
               "and the student's logits second, where teacher_logits stands")
    return (f"{how}. So the cross-entropy with the labels is taken on the teacher's logits, which gives the student "
            "no gradient, and the KL term is taken the wrong way round. The signature is "
            "distillation_loss(student_logits, teacher_logits, labels, T, alpha): call "
            "distillation_loss(student(x), teacher_logits, y, T=T, alpha=alpha), the student's logits first.")


def _is_teacher_output(trace: Trace, value) -> bool:
    if not isinstance(value, Tensor):
        return False
    return any(value is f.out or _near(value.detach().float(), f.out) for f in trace.forwards("teacher"))


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


# The stable id of the mistake each reading names: what a class report counts (tests/mistake_ids.txt pins them).
MISTAKE_IDS = {
    "backward_problem": "train.no_backward",
    "gradient_problem": "train.gradients_not_cleared",
    "step_problem": "train.optimizer_steps",
    "epochs_problem": "train.epochs",
    "mode_problem": "train.not_in_train_mode",
    "history_problem": "train.loss_history",
    "teacher_change_problem": "train.teacher_updated",
    "teacher_mode_problem": "train.teacher_not_in_eval_mode",
    "same_batch_problem": "train.soft_targets_of_another_batch",
    "passed_on_problem": "train.T_alpha_not_passed_on",
    "teacher_ignored_problem": "train.teacher_ignored",
}
# Sentences a reading gives for another mistake than its own (the loops' checks all read a missing backward()).
OTHER_IDS = ["train.gradients_cleared_before_step", "train.model_never_run"]


def reading_id(reading: str, trace: Trace, problem: str) -> str | None:
    """The id of the mistake ``problem`` names, found by the reading (a function of this module) ``reading``."""
    if problem == backward_problem(trace):
        return MISTAKE_IDS["backward_problem"]
    if reading == "gradient_problem" and _wiped_steps(trace):
        return "train.gradients_cleared_before_step"
    if reading == "mode_problem" and not (trace.forwards("student") or trace.forwards("model")):
        return "train.model_never_run"
    return MISTAKE_IDS.get(reading)


def distill_findings(trace: Trace) -> list[tuple[str, str]]:
    """Every mistake the trace shows, the most telling first (for outcome checks that fail): (sentence, id)."""
    finders = [teacher_ignored_problem, passed_on_problem, same_batch_problem, backward_problem, gradient_problem,
               step_problem, teacher_change_problem, teacher_mode_problem, epochs_problem, mode_problem]
    found = []
    for finder in finders:
        problem = finder(trace, "student") if finder is mode_problem else finder(trace)
        if problem and problem not in [text for text, _ in found]:
            found.append((problem, reading_id(finder.__name__, trace, problem)))
    return found


def distill_problems(trace: Trace) -> list[str]:
    """Every mistake the trace shows, the most telling first (for outcome checks that fail)."""
    return [text for text, _ in distill_findings(trace)]


def loop_problems(trace: Trace) -> list[str]:
    """Every mistake a train_model trace shows."""
    found = []
    for problem in (backward_problem(trace), gradient_problem(trace), step_problem(trace), epochs_problem(trace),
                    mode_problem(trace, "model")):
        if problem and problem not in found:
            found.append(problem)
    return found


def agreement(trace: Trace) -> tuple[float, float, int]:
    """After a distill run: the fraction of the probe's training images (the judge's own) on which the
    student's prediction, computed here from its final weight and bias, equals the prediction of the teacher
    as the judge built it, the fraction on which it equals the label, and the number of images."""
    x, y = trace.images, trace.labels
    if x is None or trace.weight_after is None or trace.bias_after is None or not len(x):
        return 0.0, 0.0, 0
    predicted = F.linear(x.flatten(1), trace.weight_after, trace.bias_after).argmax(dim=1)  # (N,), from the final weights
    taught = original_teacher(trace, x).argmax(dim=1)  # (N,)
    return float((predicted == taught).float().mean()), float((predicted == y).float().mean()), len(y)


# ---------------------------------------------------------------------------------------------------
# Where a mistake lives in the learner's loop: targets of the worker's task source.find
# (grader/worker/source.py), tried in order; the check shows the first line found under its message.

OPTIMIZER = ["call:Adam", "call:AdamW", "call:SGD", "call:RMSprop"]
WHERE = [  # (words of the problem's sentence, targets), the first whose words it holds
    ("arguments of distillation_loss in the wrong order", ["loss-call"]),
    ("the two names swapped", ["loss-call"]),
    ("student's own logits as the teacher's", ["loss-call"]),
    ("never runs the teacher", ["loss-call", "call:train_model", "for-over:loader"]),
    ("trains the student on the labels alone", ["call:train_model", "call:cross_entropy", "for-over:loader"]),
    ("teacher's probabilities (a softmax", ["call:softmax", "loss-call"]),
    ("in a separate pass over the loader", ["call:teacher", "for"]),
    ("teacher's logits for the previous batch", ["call:teacher", "loss-call"]),
    ("teacher logits that are not the teacher's output", ["loss-call", "call:teacher"]),
    ("distillation_loss without", ["loss-call"]),
    ("to distillation_loss the wrong way round", ["loss-call"]),
    ("to distillation_loss: pass the arguments on unchanged", ["loss-call"]),
    ("does not call distillation_loss", ["call:kl_div", "call:cross_entropy", "for-over:loader"]),
    ("its optimizer holds the teacher's parameters", OPTIMIZER),
    ("changed the teacher's weights", ["call:train_model", "call:teacher"]),
    ("let gradients reach the teacher", ["call:teacher"]),
    ("puts the teacher in train mode (teacher.train())", ["call:teacher.train", "call:train"]),
    ("calls teacher.eval() only after", ["call:teacher.eval", "call:eval"]),
    ("never calls teacher.eval()", ["for"]),
    ("switched the teacher to train mode", ["call:train", "for"]),
    ("never calls loss.backward()", ["for-over:loader", "for"]),
    ("between loss.backward() and optimizer.step()", ["call:zero_grad"]),
    ("clears the gradients once per epoch", ["call:zero_grad"]),
    ("never clears the gradients", ["call:backward", "for-over:loader"]),
    ("left the gradients of an earlier batch", ["call:zero_grad", "call:backward"]),
    ("changes the weights without an optimizer", ["for-over:loader", "for"]),
    ("never calls optimizer.step()", ["call:backward", "for-over:loader"]),
    ("steps an optimizer that does not hold", OPTIMIZER),
    ("creates a new optimizer for every batch", OPTIMIZER),
    ("optimizer.step() once per epoch", ["call:step"]),
    ("but the", ["call:step", *OPTIMIZER]),  # "... called optimizer.step() N times, but the weights did not change"
    ("called optimizer.step()", ["call:step"]),
    ("over the loader (", ["for-over:epochs", "for"]),
    ("trained on one batch per epoch", ["call:next", "for-over:loader", "for"]),
    ("trained on", ["for-over:epochs", "for"]),
    ("in eval mode for", ["call:student.eval", "call:model.eval", "call:train", "for"]),
    ("never runs the", ["for-over:loader", "for"]),
    ("returned", ["return"]),
]


def where(problem: str | None) -> list[str]:
    """The source.find targets of the line a problem sentence is about ([] for none)."""
    if not problem:
        return []
    return next((targets for words, targets in WHERE if words in problem), [])
