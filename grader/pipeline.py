"""The course's end-to-end run on real MNIST, with any code that follows the exercise contract.

Train the Teacher on hard labels, distil the Student from it, and train the same Student on hard labels
alone, all with one schedule (``SCHEDULE``, from topics.toml), then measure each model. `learnkd check all`
runs it with the learner's code; `learnkd reference` with the reference solutions.
"""

from __future__ import annotations

import copy
import io
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch
from torch import nn

from . import teacher_cache
from .data import Batches, load_mnist
from .topics import schedule

TEACHER, DISTILLED, HARD = "teacher", "student (distilled)", "student (hard labels)"


@dataclass
class ModelReport:
    name: str
    accuracy: float
    parameters: int
    size_kb: float
    train_seconds: float
    losses: list[float] = field(default_factory=list)
    cached: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def size_kb(model: nn.Module) -> float:
    """Size of the saved state_dict (what a deployment would ship), in KB."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell() / 1024


class ProgressBatches:
    """Batches that report how far an epoch has gone while the learner's own loop walks them."""

    def __init__(self, batches: Batches, label: str, stream=None):
        self.batches, self.label, self.stream, self.epoch = batches, label, stream, 0

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        from tqdm import tqdm

        self.epoch += 1
        if self.stream is None:
            yield from self.batches
            return
        yield from tqdm(self.batches, desc=f"{self.label} epoch {self.epoch}", file=self.stream,
                        leave=False, unit="batch", mininterval=0.5)


def comparison_table(reports: dict[str, ModelReport]) -> str:
    rows = [f"{'model':<24}{'accuracy':>9}{'parameters':>12}{'size':>10}{'training':>10}"]
    for r in reports.values():
        time_text = "cached" if r.cached else f"{r.train_seconds:.1f} s"
        rows.append(f"{r.name:<24}{r.accuracy:>9.2%}{r.parameters:>12,}{r.size_kb:>7.1f} KB{time_text:>10}")
    return "\n".join(rows)


def run_pipeline(code: SimpleNamespace, data_dir=None, device: str = "cpu", seed: int = 0,
                 epochs: int | None = None, cache_dir=None, cache_folder: Path | None = None,
                 stream=None, log: Callable[[str], None] = lambda text: None,
                 limit: int | None = None) -> dict[str, ModelReport]:
    """Run the three trainings with ``code`` (an object with .models, .train, .evaluate modules).

    ``cache_folder``: the submission folder whose models.py and train.py key the cached teacher.
    """
    plan = schedule()
    epochs = epochs or plan["epochs"]
    x_train, y_train = load_mnist("train", data_dir, limit)
    x_test, y_test = load_mnist("test", data_dir)
    test = Batches(x_test, y_test, batch_size=1000, device=device)

    def batches(label: str, offset: int) -> ProgressBatches:
        return ProgressBatches(Batches(x_train, y_train, plan["batch_size"], shuffle=True, seed=seed + offset,
                                       device=device), label, stream)

    reports = {}
    torch.manual_seed(seed)
    teacher = code.models.Teacher().to(device)
    key = None
    if cache_dir and cache_folder:
        key = teacher_cache.cache_key(cache_folder, epochs=epochs, seed=seed, device=device, limit=limit,
                                      lr=plan["lr"], batch_size=plan["batch_size"], data=str(data_dir))
    entry = teacher_cache.load(cache_dir, key) if key else None
    if entry is not None:
        teacher.load_state_dict(entry["state_dict"])
        losses, seconds, cached = entry["losses"], entry["seconds"], True
        log(f"teacher: using the one trained before with this code ({cache_dir})")
    else:
        log("training the Teacher on hard labels")
        start = time.perf_counter()
        losses = code.train.train_model(teacher, batches("teacher", 0), epochs=epochs, lr=plan["lr"])
        seconds, cached = time.perf_counter() - start, False
    teacher.eval()
    reports[TEACHER] = ModelReport(TEACHER, code.evaluate.evaluate(teacher, test), parameter_count(teacher),
                                   size_kb(teacher), seconds, [float(v) for v in losses or []], cached)
    if key and not cached:
        teacher_cache.save(cache_dir, key, {"state_dict": copy.deepcopy(teacher.state_dict()),
                                            "losses": reports[TEACHER].losses, "seconds": seconds})

    torch.manual_seed(seed + 1)
    student = code.models.Student().to(device)
    hard_student = copy.deepcopy(student)  # the same starting weights: only the targets differ
    log(f"distilling the Student (T={plan['T']}, alpha={plan['alpha']})")
    start = time.perf_counter()
    losses = code.train.distill(student, teacher, batches("distil", 1), epochs=epochs, T=plan["T"],
                                alpha=plan["alpha"], lr=plan["lr"])
    reports[DISTILLED] = ModelReport(DISTILLED, code.evaluate.evaluate(student, test), parameter_count(student),
                                     size_kb(student), time.perf_counter() - start, [float(v) for v in losses or []])

    log("training the same Student on hard labels only")
    start = time.perf_counter()
    losses = code.train.train_model(hard_student, batches("hard labels", 1), epochs=epochs, lr=plan["lr"])
    reports[HARD] = ModelReport(HARD, code.evaluate.evaluate(hard_student, test), parameter_count(hard_student),
                                size_kb(hard_student), time.perf_counter() - start, [float(v) for v in losses or []])
    return reports
