"""The end-to-end trainings on MNIST with the learner's code (tasks pipeline.*).

The judge sends MNIST's training split (uint8 images and labels) and the schedule of topics.toml; the
worker builds the learner's models, trains them with the learner's train_model and distill, and sends
back, per model, its exported graph (``exporting``), its losses, its training seconds and its CPU
latency. The test split never comes here: the judge runs each graph on it itself.

    pipeline.teacher  Teacher() (seeded) trained with train_model, or, on a cache hit, a fresh Teacher()
                      loaded with the weights the judge sends; the reply carries its state_dict too
    pipeline.distil   Student() (seeded) distilled from that teacher with distill
    pipeline.hard     the same Student() (same seed, same weights) trained with train_model on hard labels

The training split and the teacher are kept between requests. A request that finds one of them
missing (a fresh worker after a crash or a time-out) answers ``{"need": [...]}`` and the judge sends
it again with the request.
"""

from __future__ import annotations

import copy
import functools
import statistics
import sys
import time

import torch
from torch import nn

from . import exporting, scenarios
from .tasks import function, task

DATA, TEACHER = "pipeline.data", "pipeline.teacher"  # what the worker keeps between requests (worker.models)
EXPORT_BATCH = 1000  # the judge runs the graphs on the test set in batches of this size
LATENCY_BATCHES = (1, 1000)  # one image (an app, a web request) and a large batch (offline scoring)


class Progress:
    """Batches that show a progress bar on the worker's stderr (tqdm) while the learner's loop walks them."""

    def __init__(self, batches, label: str, show: bool):
        self.batches, self.label, self.show, self.epoch = batches, label, show, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        self.epoch += 1
        if not self.show:
            yield from self.batches
            return
        try:
            from tqdm import tqdm
        except ImportError:  # no bar, same batches
            yield from self.batches
            return
        yield from tqdm(self.batches, total=len(self.batches), desc=f"{self.label} epoch {self.epoch}",
                        file=sys.stderr, leave=False, unit="batch", mininterval=0.5)


def own_threads(task_fn):
    """Run the task on the judge's number of torch threads (``threads``), then go back to the worker's."""
    @functools.wraps(task_fn)
    def run(worker, request: dict):
        wanted, before = request.get("threads"), torch.get_num_threads()
        if type(wanted) is int and wanted >= 1:
            torch.set_num_threads(wanted)
        try:
            return task_fn(worker, request)
        finally:
            torch.set_num_threads(before)
    return run


def missing(worker, request: dict, teacher: bool = False) -> list[str]:
    """What this request needs that the worker does not hold: the training split, the trained teacher."""
    need = []
    data = request.get("data") or {}
    if "images" in data:
        worker.models[DATA] = (data["key"], scenarios.normalise(data["images"]), data["labels"].long())
    elif worker.models.get(DATA, (None,))[0] != data.get("key"):
        need.append("data")
    if teacher:
        state = request.get("teacher_state")
        if state is not None:
            worker.models[TEACHER] = load_teacher(worker, state, request["seed"], request.get("device", "cpu"))
        elif TEACHER not in worker.models:
            need.append("teacher")
    return need


def load_teacher(worker, state: dict, seed: int, device: str) -> nn.Module:
    torch.manual_seed(seed)
    teacher = function(worker, "models", "Teacher")()
    require_module(teacher, "Teacher")
    teacher.to(device)
    teacher.load_state_dict(state)
    return teacher


def require_module(model, name: str) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"{name}() should build a torch.nn.Module, but it built a {type(model).__name__}")


def loader(worker, request: dict, label: str, offset: int) -> Progress:
    _, x, y = worker.models[DATA]
    plan = request["schedule"]
    batches = scenarios.Batches(x, y, plan["batch_size"], shuffle=True, seed=request["seed"] + offset,
                                device=request.get("device", "cpu"))
    return Progress(batches, label, bool(request.get("progress")))


@torch.no_grad()
def cpu_latency_ms(model: nn.Module, budget_s: float = 0.3) -> dict:
    """Median wall time of one forward pass of a CPU copy in eval mode, in ms, per batch size (informational)."""
    model = copy.deepcopy(model).cpu().eval()
    result = {}
    for batch in LATENCY_BATCHES:
        x = torch.randn(batch, 1, 28, 28)
        model(x)  # warm-up
        times, spent = [], 0.0
        while len(times) < 3 or (spent < budget_s and len(times) < 200):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
            spent += times[-1]
        result[str(batch)] = statistics.median(times) * 1000
    return result


def describe(model: nn.Module, device: str, export: bool = True) -> dict:
    """The trained model as the judge receives it: its graph (or why it has none) and its latency."""
    reply = {"graph": None, "export_error": None, "latency_ms": {}}
    model.cpu()
    try:
        if export:
            try:
                reply["graph"] = exporting.export_model(model, EXPORT_BATCH)
            except Exception as err:  # the learner's model: any error, said in words
                text = str(err).strip().splitlines()
                reply["export_error"] = f"{type(err).__name__}: {text[0][:500] if text else '(no message)'}"
        try:
            reply["latency_ms"] = cpu_latency_ms(model)
        except Exception:
            pass  # informational only
    finally:
        model.to(device)
    return reply


def losses_of(value) -> list:
    """The per-epoch losses a learner's loop returned, as numbers where they are numbers."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().reshape(-1).tolist()
    if not isinstance(value, (list, tuple)):
        return []
    out = []
    for v in value:
        try:
            out.append(float(v))
        except (TypeError, ValueError, RuntimeError):
            out.append(None)
    return out


@task("pipeline.teacher")
@own_threads
def teacher_task(worker, request: dict) -> dict:
    """Train the learner's Teacher with its train_model (or load the judge's cached weights)."""
    device = request.get("device", "cpu")
    cached = request.get("cached_state")
    if cached is not None:
        teacher = load_teacher(worker, cached, request["seed"], device)
        worker.models[TEACHER] = teacher
        return {"cached": True, **describe(teacher, device, export=False)}
    need = missing(worker, request)
    if need:
        return {"need": need}
    worker.models.pop(TEACHER, None)
    plan = request["schedule"]
    torch.manual_seed(request["seed"])
    teacher = function(worker, "models", "Teacher")()
    require_module(teacher, "Teacher")
    teacher.to(device)
    start = time.perf_counter()
    losses = function(worker, "train", "train_model")(teacher, loader(worker, request, "teacher", 0),
                                                      epochs=plan["epochs"], lr=plan["lr"])
    seconds = time.perf_counter() - start
    worker.models[TEACHER] = teacher
    state = {k: v.detach().cpu() if isinstance(v, torch.Tensor) else v for k, v in teacher.state_dict().items()}
    return {"cached": False, "losses": losses_of(losses), "seconds": seconds, "state_dict": state,
            **describe(teacher, device)}


def student(worker, request: dict) -> nn.Module:
    """Student() built from the seed of the students: the distilled and the hard-label one start the same."""
    torch.manual_seed(request["seed"] + 1)
    model = function(worker, "models", "Student")()
    require_module(model, "Student")
    return model.to(request.get("device", "cpu"))


@task("pipeline.distil")
@own_threads
def distil_task(worker, request: dict) -> dict:
    """Distil a new Student from the teacher with the learner's distill."""
    need = missing(worker, request, teacher=True)
    if need:
        return {"need": need}
    plan, device = request["schedule"], request.get("device", "cpu")
    model = student(worker, request)
    start = time.perf_counter()
    losses = function(worker, "train", "distill")(model, worker.models[TEACHER], loader(worker, request, "distil", 1),
                                                  epochs=plan["epochs"], T=plan["T"], alpha=plan["alpha"],
                                                  lr=plan["lr"])
    seconds = time.perf_counter() - start
    return {"losses": losses_of(losses), "seconds": seconds, **describe(model, device)}


@task("pipeline.hard")
@own_threads
def hard_task(worker, request: dict) -> dict:
    """Train the same Student, from the same weights, with the learner's train_model on hard labels."""
    need = missing(worker, request)
    if need:
        return {"need": need}
    plan, device = request["schedule"], request.get("device", "cpu")
    model = student(worker, request)
    start = time.perf_counter()
    losses = function(worker, "train", "train_model")(model, loader(worker, request, "hard labels", 1),
                                                      epochs=plan["epochs"], lr=plan["lr"])
    seconds = time.perf_counter() - start
    return {"losses": losses_of(losses), "seconds": seconds, **describe(model, device)}
