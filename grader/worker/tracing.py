"""Running a learner's train_model and distill on probes, and recording what they did (tasks train.*).

The recording half of the topic `train`; the reading half, and the judge's checks of what is recorded
here, are in grader/diagnose/train.py (judge side). The learner's loop runs on probe models (one
Linear layer on tiny synthetic images) and a probe loader, and every event on the way is recorded:

- each forward pass of a probe: its input, its output, its weight and bias at that moment, train or
  eval mode, autograd on or off;
- each backward pass reaching the trained model's weight: the gradient it brought (``register_hook``)
  and what ``.grad`` held once it was added in (``register_post_accumulate_grad_hook``);
- each ``optimizer.step()`` (a global step pre-hook): the weight's ``.grad`` then, which parameters
  the optimizer holds, and which optimizer it is (by order of first step);
- each pass over the loader (how many batches it gave out), each gradient reaching the teacher, and
  each switch of the teacher between train and eval mode (``teacher.train()``, ``teacher.eval()``);
- during a distill run, each call of ``distillation_loss``: the learner's train module (and loss
  module) get, in its place, a recorder with the same signature. It holds no formula: it sends its
  arguments to the judge (callback "kd"), which computes the reference loss, its gradients with
  respect to the student's and the teacher's logits, and answers; the recorder returns that value
  through an autograd Function that hands those gradients back. So a bug in the learner's loss cannot
  show up as a training failure.

What is sent is plain data (``wire``): lists of events as dicts of tensors, booleans and numbers.
Where the reading needs to know that two values are the same object (the logits a loss call received
and a forward's output), the identity is resolved here into an index (of the forward, in order) and
the judge rebuilds it. The judge regenerates the probe data and the loader's batches itself (the
functions below, same seeds), so a pass sends only how many batches it gave out.

    train.trace_train_model  the learner's train_model on a probe handed over in eval mode
    train.trace_distill      the learner's distill on a zero student and a teacher that disagrees with the labels
    train.floor              the learner's train_model on ``scenarios.FloorNet`` and the judge's MNIST images,
                             for one epoch; the model comes back exported (``exporting``) for the judge to measure
"""

from __future__ import annotations

import inspect
import sys
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from . import exporting, scenarios
from .registry import function, task

CLASSES = 10
IMAGE = (1, 28, 28)
PIXELS = 28 * 28
DEFAULT_T, DEFAULT_ALPHA = 2.0, 0.7  # the defaults of the exercise's distillation_loss signature


# ---------------------------------------------------------------------------------------------------
# The probes' data: the judge calls these too, to regenerate what the worker used


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


def probe_data(batches: int, batch_size: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """The images and labels of a probe run, and the teacher's weight: what worker and judge both build."""
    patterns = class_patterns(seed)
    x, y = pattern_data(batches * batch_size, patterns, seed + 1)
    return x, y, disagreeing_weight(patterns)


def loader_seed(seed: int) -> int:
    """The seed of the probe loader's shuffling generator (its passes are reproduced by the judge)."""
    return seed + 2


# ---------------------------------------------------------------------------------------------------
# Recording


class RunawayLoop(Exception):
    """The learner's loop went on far past the epochs it was asked for: stopped before the record of its
    steps fills the worker's memory (a loop that never ends would otherwise read as "out of memory")."""


RUNAWAY_FACTOR = 4  # passes or forwards beyond this many times what the epochs need: a loop that does not end


class Recorder:
    """The events of one run, in order, as plain data; the live outputs of the forwards, for identity.
    ``function``, ``epochs`` and ``batches`` describe the call, for the bounds on passes and forwards."""

    def __init__(self, function: str = "", epochs: int = 0, batches: int = 0):
        self.function, self.epochs, self.batches = function, epochs, batches
        self.passes = self.forwards = 0
        self.events: list[dict] = []
        self.outputs: list[Tensor] = []  # each forward's output as returned (graph and all), in order
        self.optimizers: list = []  # each optimizer that stepped, in order of its first step (kept alive)
        self.calls = 0  # loss calls the judge answered

    def count_pass(self) -> None:
        self.passes += 1
        if self.epochs and self.passes > RUNAWAY_FACTOR * self.epochs + 2:
            raise RunawayLoop(f"{self.function} had gone over the loader {self.passes} times though "
                              f"epochs={self.epochs} (one pass is one epoch): does your epoch loop use the epochs "
                              f"argument, and does it end?")

    def count_forward(self) -> None:
        self.forwards += 1
        if self.epochs and self.forwards > RUNAWAY_FACTOR * 2 * self.epochs * self.batches + 16:
            raise RunawayLoop(f"{self.function} had called the models {self.forwards} times in "
                              f"{self.epochs} epoch(s) of {self.batches} batches: does a loop inside your "
                              f"epoch loop end?")

    def forward_index(self, value) -> int | None:
        """The forward whose output ``value`` is (the same object), if any."""
        return next((i for i, out in enumerate(self.outputs) if value is out), None)

    def optimizer_index(self, optimizer) -> int:
        for i, known in enumerate(self.optimizers):
            if known is optimizer:
                return i
        self.optimizers.append(optimizer)
        return len(self.optimizers) - 1


class RecordingModel(nn.Module):
    """A tiny model for (B, 1, 28, 28) images: Flatten, Linear(784, 10). It records every forward pass."""

    def __init__(self, role: str, recorder: Recorder, weight: Tensor | None = None):
        super().__init__()
        self.flatten = nn.Flatten()
        self.linear = nn.Linear(PIXELS, CLASSES)
        if weight is not None:
            with torch.no_grad():
                self.linear.weight.copy_(weight)
                self.linear.bias.zero_()
        self.role, self.recorder = role, recorder
        self.record_modes = False  # set once the probe is handed over: its train()/eval() calls are then recorded

    def train(self, mode: bool = True):
        if getattr(self, "record_modes", False):
            self.recorder.events.append({"kind": "mode", "role": self.role, "training": bool(mode)})
        return super().train(mode)

    def forward(self, x: Tensor) -> Tensor:
        self.recorder.count_forward()
        weight, bias = self.linear.weight.detach().clone(), self.linear.bias.detach().clone()
        out = self.linear(self.flatten(x))  # (B, 10)
        self.recorder.outputs.append(out)
        self.recorder.events.append({"kind": "forward", "role": self.role, "x": x.detach().clone(),
                                     "out": out.detach().clone(), "weight": weight, "bias": bias,
                                     "training": all(m.training for m in self.modules()),
                                     "grad_enabled": torch.is_grad_enabled()})
        return out


class CountedBatches(scenarios.Batches):
    """Batches shuffled anew on every pass, each pass counted by ``recorder`` (which stops a runaway loop)."""

    def __init__(self, x: Tensor, y: Tensor, batch_size: int, recorder: Recorder, seed: int = 0):
        super().__init__(x, y, batch_size, shuffle=True, seed=seed)
        self.recorder = recorder

    def __iter__(self):
        self.recorder.count_pass()
        yield from super().__iter__()


class ProbeLoader(CountedBatches):
    """Counted batches; each pass is recorded with the number of batches it gave out."""

    def __iter__(self):
        current = {"kind": "pass", "batches": 0}
        self.recorder.events.append(current)
        for x, y in super().__iter__():
            current["batches"] += 1
            yield x, y


def _clone(t: Tensor | None) -> Tensor | None:
    return None if t is None else t.detach().clone()


@contextmanager
def recording(recorder: Recorder, watched: Tensor, teacher: RecordingModel | None = None, swap: tuple | None = None):
    """Hooks on ``watched`` (the trained weight), the teacher and every optimizer step; ``swap`` =
    (train module, loss module, replacement) puts the replacement in place of distillation_loss."""
    events = recorder.events
    teacher_params = list(teacher.parameters()) if teacher is not None else []
    last_backward: list[dict] = []

    def fresh(grad):
        event = {"kind": "backward", "fresh": grad.detach().clone(), "accumulated": None}
        last_backward[:] = [event]
        events.append(event)

    def accumulated(param):
        if last_backward and param.grad is not None:
            last_backward[0]["accumulated"] = param.grad.detach().clone()

    def step(optimizer, args, kwargs):
        held = [p for group in optimizer.param_groups for p in group["params"]]
        events.append({"kind": "step", "grad": _clone(watched.grad), "optimizer": recorder.optimizer_index(optimizer),
                       "holds_model": any(p is watched for p in held),
                       "holds_teacher": any(p is q for p in held for q in teacher_params)})

    def teacher_grad(grad):
        events.append({"kind": "teacher_grad", "nonzero": bool(grad.detach().abs().sum() > 0)})

    handles = [watched.register_hook(fresh), watched.register_post_accumulate_grad_hook(accumulated),
               register_optimizer_step_pre_hook(step)]
    handles += [p.register_hook(teacher_grad) for p in teacher_params]
    swapped = []
    try:
        if swap is not None:
            swapped = _swap_loss(*swap)
        yield recorder
    finally:
        for handle in handles:
            handle.remove()
        for owner, name, value in reversed(swapped):
            setattr(owner, name, value)


# ---------------------------------------------------------------------------------------------------
# The loss the judge computes


def _signature(student_logits, teacher_logits, labels, T=DEFAULT_T, alpha=DEFAULT_ALPHA):
    """The exercise's signature of distillation_loss (no body: the judge computes the loss)."""


SIGNATURE = inspect.signature(_signature)


class JudgedLoss(torch.autograd.Function):
    """The judge's value of the loss, with the gradients it computed handed back in the backward pass."""

    @staticmethod
    def forward(ctx, student_logits, teacher_logits, value, student_grad, teacher_grad):
        ctx.save_for_backward(student_grad, teacher_grad)
        return value.clone()

    @staticmethod
    def backward(ctx, grad):
        student_grad, teacher_grad = ctx.saved_tensors
        return (grad * student_grad if ctx.needs_input_grad[0] else None,
                grad * teacher_grad if ctx.needs_input_grad[1] else None, None, None, None)


def judged_loss(worker, recorder: Recorder):
    """A stand-in for distillation_loss: the judge computes it (callback "kd"); each call is recorded."""

    def distillation_loss(*args, **kwargs):
        try:
            bound = SIGNATURE.bind(*args, **kwargs)
        except TypeError as err:
            raise TypeError(f"distillation_loss() {err}") from None
        given = sorted(bound.arguments)
        bound.apply_defaults()
        a = bound.arguments
        s, t = a["student_logits"], a["teacher_logits"]
        answer = worker.callback("kd", student_logits=s, teacher_logits=t, labels=a["labels"], T=a["T"],
                                 alpha=a["alpha"])
        value = JudgedLoss.apply(s, t, answer["value"].to(s.dtype), answer["student_grad"].to(s.dtype),
                                 answer["teacher_grad"].to(t.dtype))
        recorder.events.append({"kind": "loss_call", "call": recorder.calls, "given": given,
                                "by_name": sorted(k for k in kwargs if k in bound.arguments),
                                "student": recorder.forward_index(s), "teacher": recorder.forward_index(t)})
        recorder.calls += 1
        return value

    return distillation_loss


def _swap_loss(train_module, loss_module, replacement) -> list[tuple]:
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


# ---------------------------------------------------------------------------------------------------
# The tasks


def _shape(request: dict) -> tuple[int, int, int, int]:
    return int(request["epochs"]), int(request["batches"]), int(request["batch_size"]), int(request["seed"])


@task("train.trace_train_model")
def trace_train_model(worker, request: dict) -> dict:
    """The learner's train_model on a probe handed over in eval mode, on a shuffling probe loader."""
    train_model = function(worker, "train", "train_model")
    epochs, batches, batch_size, seed = _shape(request)
    recorder = Recorder("train_model", epochs, batches)
    x, y, _ = probe_data(batches, batch_size, seed)
    model = RecordingModel("model", recorder)
    model.eval()  # as evaluate() leaves it: train_model must switch it back
    loader = ProbeLoader(x, y, batch_size, recorder, seed=loader_seed(seed))
    before = model.linear.weight.detach().clone()
    with recording(recorder, model.linear.weight):
        result = train_model(model, loader, epochs=epochs, lr=request["lr"])
    return {"events": recorder.events, "result": result, "weight_before": before,
            "weight_after": model.linear.weight.detach().clone(), "bias_after": model.linear.bias.detach().clone()}


@task("train.trace_distill")
def trace_distill(worker, request: dict) -> dict:
    """The learner's distill: a zero-initialised probe student handed over in eval mode, and a probe teacher
    whose logits disagree with the labels (class c -> c + 1), handed over in train mode when
    ``teacher_training`` (as train_model leaves it: what the checks do), else in eval mode; distillation_loss
    computed by the judge."""
    distill = function(worker, "train", "distill")
    train_module = worker.modules.get("train") or sys.modules["learnkd_submission.train"]
    loss_module = worker.modules.get("loss")
    epochs, batches, batch_size, seed = _shape(request)
    recorder = Recorder("distill", epochs, batches)
    x, y, teacher_weight = probe_data(batches, batch_size, seed)
    student = RecordingModel("student", recorder, weight=torch.zeros(CLASSES, PIXELS))
    teacher = RecordingModel("teacher", recorder, weight=teacher_weight)
    student.eval()  # as evaluate() leaves it
    teacher.train(bool(request.get("teacher_training")))  # train mode: as train_model leaves it
    teacher.record_modes = True  # from here on, distill's teacher.eval() / teacher.train() calls are recorded
    loader = ProbeLoader(x, y, batch_size, recorder, seed=loader_seed(seed))
    before = student.linear.weight.detach().clone()
    swap = (train_module, loss_module, judged_loss(worker, recorder))
    with recording(recorder, student.linear.weight, teacher, swap):
        result = distill(student, teacher, loader, epochs=epochs, T=request["T"], alpha=request["alpha"],
                         lr=request["lr"])
    return {"events": recorder.events, "result": result, "weight_before": before,
            "weight_after": student.linear.weight.detach().clone(),
            "bias_after": student.linear.bias.detach().clone(),
            "teacher_after": [p.detach().clone() for p in teacher.parameters()],
            "teacher_grads_after": [_clone(p.grad) for p in teacher.parameters()]}


@task("train.floor")
def floor(worker, request: dict) -> dict:
    """``scenarios.FloorNet`` (seeded) trained with the learner's train_model on the judge's images, exported."""
    train_model = function(worker, "train", "train_model")
    model = scenarios.FloorNet()
    x = scenarios.normalise(request["images"])
    epochs, batch_size = int(request["epochs"]), int(request["batch_size"])
    counter = Recorder("train_model", epochs, -(-len(x) // batch_size))
    loader = CountedBatches(x, request["labels"], batch_size, counter, seed=int(request["seed"]))
    result = train_model(model, loader, epochs=epochs, lr=request["lr"])
    return {"graph": exporting.export_model(model, int(request["export_batch"])), "result": result}
