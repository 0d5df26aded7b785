"""The end-to-end trainings on MNIST with the learner's code (tasks pipeline.*).

The judge sends MNIST's training split (uint8 images and labels) and the schedule of topics.toml; the
worker builds the learner's models, trains them with the learner's train_model and distill, and sends
back, per model, its exported graphs (``exporting``: one for batches of 1,000 images, on which the judge
measures accuracy, and one for a single image, on which it measures the 1-image latency), its losses and
its training seconds. The test split never comes here: the judge runs each graph on it itself, and times
every model itself, the same way (``grader.lab.latency``).

    pipeline.teacher  Teacher() (seeded) trained with train_model, or, on a cache hit, a fresh Teacher()
                      loaded with the weights the judge sends; the reply carries its state_dict too
    pipeline.distil   Student() (seeded) distilled from that teacher with distill
    pipeline.hard     the same Student() (same seed, same weights) trained with train_model on hard labels

The training split and the teacher are kept between requests. A request that finds one of them
missing (a fresh worker after a crash or a time-out) answers ``{"need": [...]}`` and the judge sends
it again with the request.
"""

from __future__ import annotations

import functools
import os
import sys
import time

import torch
from torch import nn

from . import exporting, scenarios
from .registry import function, task

DATA, TEACHER = "pipeline.data", "pipeline.teacher"  # what the worker keeps between requests (worker.models)
EXPORT_BATCH = 1000  # the judge runs the graphs on the test set in batches of this size
LATENCY_BATCH = 1  # and times one image on a graph exported for a single image


class Progress:
    """Batches that show one progress bar per model on the worker's stderr (tqdm) while the learner's loop
    walks them: every epoch of the training in one bar, so its estimate is the time left for the model."""

    def __init__(self, batches, label: str, show: bool, epochs: int = 1):
        self.batches, self.label, self.show, self.epochs, self.epoch = batches, label, show, max(1, epochs), 0
        self.bar = None

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        self.epoch += 1
        bar = self.open()
        if bar is None:
            yield from self.batches
            return
        if self.epoch > self.epochs:  # a loop that walks more epochs than asked: the bar grows
            bar.total += len(self.batches)
        bar.set_description(f"{self.label} epoch {self.epoch}/{max(self.epochs, self.epoch)}", refresh=False)
        for batch in self.batches:
            yield batch
            bar.update(1)  # the learner asked for the next batch: a step is done

    def open(self):
        if not self.show:
            return None
        if self.bar is None:
            try:
                from tqdm import tqdm
            except ImportError:  # no bar, same batches
                self.show = False
                return None
            try:
                size = os.get_terminal_size(sys.stderr.fileno())
            except (OSError, ValueError, AttributeError):
                size = os.terminal_size((0, 0))
            # a terminal that says it has no size (a fresh pseudo-terminal): tqdm would draw nothing
            shape = {"dynamic_ncols": True} if size.columns > 0 and size.lines > 0 else \
                {"ncols": size.columns or 100, "nrows": size.lines or 40}
            self.bar = tqdm(total=len(self.batches) * self.epochs, file=sys.stderr, leave=False, unit="batch",
                            mininterval=0.5, **shape)
        return self.bar

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


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
    return Progress(batches, label, bool(request.get("progress")), plan["epochs"])


def export(model: nn.Module, batch: int) -> tuple[dict | None, str | None]:
    """The model's graph for batches of ``batch`` images, or why it has none (the learner's model: any error)."""
    try:
        return exporting.export_model(model, batch), None
    except Exception as err:
        text = str(err).strip().splitlines()
        return None, f"{type(err).__name__}: {text[0][:500] if text else '(no message)'}"


def describe(model: nn.Module, device: str, export_all: bool = True) -> dict:
    """The trained model as the judge receives it: its graphs (or why it has none). ``export_all``: also the
    graph for batches of 1,000 (a cached teacher's is in the judge's cache already)."""
    reply = {"graph": None, "export_error": None, "latency_graph": None}
    model.cpu()
    try:
        if export_all:
            reply["graph"], reply["export_error"] = export(model, EXPORT_BATCH)
        if reply["export_error"] is None:
            reply["latency_graph"] = export(model, LATENCY_BATCH)[0]  # only timed: none, no latency
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
        return {"cached": True, **describe(teacher, device, export_all=False)}
    need = missing(worker, request)
    if need:
        return {"need": need}
    worker.models.pop(TEACHER, None)
    plan = request["schedule"]
    torch.manual_seed(request["seed"])
    teacher = function(worker, "models", "Teacher")()
    require_module(teacher, "Teacher")
    teacher.to(device)
    batches = loader(worker, request, "teacher", 0)
    start = time.perf_counter()
    try:
        losses = function(worker, "train", "train_model")(teacher, batches, epochs=plan["epochs"], lr=plan["lr"])
    finally:
        batches.close()
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
    batches = loader(worker, request, "distil", 1)
    start = time.perf_counter()
    try:
        losses = function(worker, "train", "distill")(model, worker.models[TEACHER], batches, epochs=plan["epochs"],
                                                      T=plan["T"], alpha=plan["alpha"], lr=plan["lr"])
    finally:
        batches.close()
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
    batches = loader(worker, request, "hard labels", 1)
    start = time.perf_counter()
    try:
        losses = function(worker, "train", "train_model")(model, batches, epochs=plan["epochs"], lr=plan["lr"])
    finally:
        batches.close()
    seconds = time.perf_counter() - start
    return {"losses": losses_of(losses), "seconds": seconds, **describe(model, device)}
