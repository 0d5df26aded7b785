"""The course's end-to-end run on real MNIST, with any code that follows the exercise contract.

Train the Teacher on hard labels, distil the Student from it, and train the same Student on hard labels
alone, all with one schedule (``SCHEDULE``, from topics.toml), then measure each model: test accuracy,
parameters, size on disk, CPU inference latency, agreement with the teacher. `learnkd reference` runs it
with the reference solutions and `learnkd report` with the learner's, both in this process and with
``curves=True`` (test accuracy measured during training, for the plots). `learnkd check all` does not run
it: the learner's code trains in the grader's worker and the judge measures the exported graphs on the test
set itself (``grader.grading.end_to_end``); it shares ``ModelReport``, ``comparison_table`` and the latency
method (``grader.lab.latency``: every model timed the same way, once all are trained) with this.
"""

from __future__ import annotations

import copy
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch
from torch import Tensor, nn

from grader.lab import latency, teacher_cache
from grader.lab.data import Batches, load_mnist
from grader.course.topics import schedule

TEACHER, DISTILLED, HARD = "teacher", "student (distilled)", "student (hard labels)"
# Batch sizes of the CPU latency measurement: one image (a phone app, a web request) and a large batch
# (offline scoring, where throughput is what counts).
LATENCY_BATCHES = latency.BATCHES
# Test accuracy during training is measured on the first PROBE_EXAMPLES test images, PROBES_PER_EPOCH
# times an epoch: enough points for a curve, a few seconds in all.
PROBE_EXAMPLES, PROBES_PER_EPOCH = 2000, 4


@dataclass
class ModelReport:
    name: str
    accuracy: float
    parameters: int
    size_kb: float
    train_seconds: float
    losses: list[float] = field(default_factory=list)  # the mean training loss of each epoch, as returned
    cached: bool = False
    agreement: float | None = None  # fraction of test images whose predicted class is the teacher's
    latency_ms: dict[int, float] = field(default_factory=dict)  # batch size -> median ms per batch on the CPU
    latency_iqr_ms: dict[int, float] = field(default_factory=dict)  # batch size -> interquartile range of the calls
    curve: list[tuple[float, float]] = field(default_factory=list)  # (epoch, accuracy on the probe images)
    # Kept for the figures, not written to JSON: the trained model, its test logits (N, 10) on the CPU.
    model: nn.Module | None = field(default=None, repr=False, compare=False)
    logits: Tensor | None = field(default=None, repr=False, compare=False)

    @property
    def predictions(self) -> Tensor | None:
        return None if self.logits is None else self.logits.argmax(dim=1)

    def to_dict(self) -> dict:
        """The figures as plain JSON values (no model, no tensors)."""
        return {"name": self.name, "accuracy": self.accuracy, "parameters": self.parameters,
                "size_kb": self.size_kb, "train_seconds": self.train_seconds, "cached": self.cached,
                "losses": list(self.losses), "agreement": self.agreement,
                "latency_ms": {str(k): v for k, v in self.latency_ms.items()},
                "latency_iqr_ms": {str(k): v for k, v in self.latency_iqr_ms.items()},
                "curve": [list(point) for point in self.curve]}


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def size_kb(model: nn.Module) -> float:
    """Size of the saved state_dict (what a deployment would ship), in KB."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell() / 1024


@torch.no_grad()
def test_logits(model: nn.Module, x: Tensor, batch_size: int = 1000) -> Tensor:
    """The model's logits for every image of ``x``, in eval mode, gathered on the CPU: (N, 10)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters(), torch.empty(0)).device
    out = torch.cat([model(x[i:i + batch_size].to(device)).float().cpu() for i in range(0, len(x), batch_size)])
    model.train(was_training)
    return out


def time_models(models: dict[str, nn.Module]) -> dict[str, dict[int, latency.Latency]]:
    """Each model's CPU latency (``grader.lab.latency``): CPU copies in eval mode, timed together once all are trained."""
    copies = {name: copy.deepcopy(model).cpu().eval() for name, model in models.items()}
    return latency.measure({name: {b: model for b in LATENCY_BATCHES} for name, model in copies.items()})


class ProgressBatches:
    """Batches that report how far an epoch has gone while the learner's own loop walks them.

    With a ``probe`` (a function of the fractional epoch), it is called PROBES_PER_EPOCH times an
    epoch, between two of the learner's steps: that is how training curves are drawn without
    touching the learner's loop.
    """

    def __init__(self, batches: Batches, label: str, stream=None, probe: Callable[[float], None] | None = None):
        self.batches, self.label, self.stream, self.epoch, self.probe = batches, label, stream, 0, probe

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        self.epoch += 1
        batches = iter(self.batches)
        if self.stream is not None:
            from tqdm import tqdm

            batches = tqdm(batches, total=len(self.batches), desc=f"{self.label} epoch {self.epoch}",
                           file=self.stream, leave=False, unit="batch", mininterval=0.5)
        if self.probe is None:
            yield from batches
            return
        n = len(self.batches)
        every = max(1, n // PROBES_PER_EPOCH)
        for i, batch in enumerate(batches):
            if i and i % every == 0 and n - i >= every // 2:
                self.probe(self.epoch - 1 + i / n)  # the learner has taken i steps of this epoch
            yield batch
        self.probe(float(self.epoch))  # asked for the next batch after the last: the epoch is done


class AccuracyCurve:
    """Test accuracy of ``model`` on a few test images, taken during training; leaves the model's mode as it was."""

    def __init__(self, model: nn.Module, x: Tensor, y: Tensor):
        self.model, self.x, self.y, self.points = model, x, y, []

    def __call__(self, epoch: float) -> None:
        predicted = test_logits(self.model, self.x).argmax(dim=1)
        self.points.append((round(epoch, 4), (predicted == self.y.cpu()).float().mean().item()))


LATENCY_WIDTH = 16  # "0.25 ± 0.01 ms" and the column's gap


def comparison_table(reports: dict[str, ModelReport]) -> str:
    """The comparison of the three models, one line each, as `learnkd check all` prints it."""
    from grader.lab.table import text_table

    header = ["model", "accuracy", "parameters", "size", "agrees", "1 image", "training"]
    rows = []
    for r in reports.values():
        one = latency.spread_text(r.latency_ms[1], r.latency_iqr_ms.get(1)) if 1 in r.latency_ms else "-"
        rows.append([r.name, f"{r.accuracy:.2%}", f"{r.parameters:,}", f"{r.size_kb:.1f} KB",
                     "-" if r.agreement is None else f"{r.agreement:.1%}", one,
                     "cached" if r.cached else f"{r.train_seconds:.1f} s"])
    return text_table(header, rows, widths=[24, 9, 12, 11, 8, LATENCY_WIDTH, 10], gap="")


def table_notes(test_examples: int) -> list[str]:
    """What the table's columns mean: 'agrees' and '1 image' (the lines under the table)."""
    calls_text = f"at least {latency.MIN_ROUNDS[1]} calls"
    return [
        f"agrees: the share of the {test_examples:,} test images whose predicted class is the teacher's.",
        f"1 image: the median time of one forward pass of one image on one CPU thread ± half the interquartile "
        f"range of {calls_text}. The three models are timed in turn after training, so each meets the same load "
        "and the rows compare; another run (a new process, another load) moves all three together, by up to ±25% "
        "on a 2-core machine. "
        f"\"{latency.NOISY}\": a spread over {latency.NOISY_SPREAD:.0%} of the median, too wide to trust (other "
        "processes took the CPU).",
    ]


def train_teacher(code: SimpleNamespace, loader_for: Callable[[nn.Module], object], plan: dict, epochs: int,
                  seed: int, device: str, cache_dir=None, cache_folder: Path | None = None, data_dir=None,
                  limit: int | None = None, log: Callable[[str], None] = lambda text: None):
    """A Teacher trained with ``code`` on ``loader_for(teacher)``, or loaded from the cache.

    Returns (teacher, losses, seconds, cached).
    """
    torch.manual_seed(seed)
    teacher = code.models.Teacher().to(device)
    key = None
    if cache_dir and cache_folder:
        key = teacher_cache.cache_key(cache_folder, epochs=epochs, seed=seed, device=device, limit=limit,
                                      lr=plan["lr"], batch_size=plan["batch_size"], data=str(data_dir))
    entry = teacher_cache.load(cache_dir, key) if key else None
    if entry is not None:
        teacher.load_state_dict(entry["state_dict"])
        log(f"teacher: using the one trained before with this code ({cache_dir})")
        return teacher, entry["losses"], entry["seconds"], True
    log("training the Teacher on hard labels")
    start = time.perf_counter()
    losses = code.train.train_model(teacher, loader_for(teacher), epochs=epochs, lr=plan["lr"])
    seconds = time.perf_counter() - start
    losses = [float(v) for v in losses or []]
    if key:
        teacher_cache.save(cache_dir, key, {"state_dict": copy.deepcopy(teacher.state_dict()),
                                            "losses": losses, "seconds": seconds})
    return teacher, losses, seconds, False


def run_pipeline(code: SimpleNamespace, data_dir=None, device: str = "cpu", seed: int = 0,
                 epochs: int | None = None, cache_dir=None, cache_folder: Path | None = None,
                 stream=None, log: Callable[[str], None] = lambda text: None,
                 limit: int | None = None, curves: bool = False, keep: bool = False) -> dict[str, ModelReport]:
    """Run the three trainings with ``code`` (an object with .models, .train, .evaluate modules).

    ``cache_folder``: the submission folder whose models.py and train.py key the cached teacher.
    ``limit``: train on the first ``limit`` training images only (quick runs, tests).
    ``curves``: measure test accuracy during training (``ModelReport.curve``).
    ``keep``: keep each trained model and its test logits in its report (for the figures).
    """
    plan = schedule()
    epochs = epochs or plan["epochs"]
    x_train, y_train = load_mnist("train", data_dir, limit)
    x_test, y_test = load_mnist("test", data_dir)
    test = Batches(x_test, y_test, batch_size=1000, device=device)
    x_probe, y_probe = x_test[:PROBE_EXAMPLES].to(device), y_test[:PROBE_EXAMPLES]
    probes: dict[str, AccuracyCurve] = {}

    def loader(label: str, offset: int, model: nn.Module) -> ProgressBatches:
        if curves:
            probes[label] = AccuracyCurve(model, x_probe, y_probe)
        batches = Batches(x_train, y_train, plan["batch_size"], shuffle=True, seed=seed + offset, device=device)
        return ProgressBatches(batches, label, stream, probes.get(label))

    reports: dict[str, ModelReport] = {}
    predictions: dict[str, Tensor] = {}

    def measure(name: str, label: str, model: nn.Module, losses, seconds: float, cached: bool = False) -> None:
        accuracy = code.evaluate.evaluate(model, test)  # the learner's evaluate: what check all grades
        logits = test_logits(model, x_test)  # (N, 10): for the agreement and the figures
        predictions[name] = logits.argmax(dim=1)  # the teacher's comes first: every model is compared with it
        probe = probes.get(label)
        reports[name] = ModelReport(
            name, accuracy, parameter_count(model), size_kb(model), seconds, [float(v) for v in losses or []],
            cached, agreement=(predictions[name] == predictions[TEACHER]).float().mean().item(),
            curve=probe.points if probe else [], model=model if keep else None, logits=logits if keep else None)

    teacher, losses, seconds, cached = train_teacher(
        code, lambda model: loader("teacher", 0, model), plan, epochs, seed, device, cache_dir, cache_folder,
        data_dir, limit, log)
    teacher.eval()
    measure(TEACHER, "teacher", teacher, losses, seconds, cached)

    torch.manual_seed(seed + 1)
    student = code.models.Student().to(device)
    hard_student = copy.deepcopy(student)  # the same starting weights: only the targets differ
    log(f"distilling the Student (T={plan['T']}, alpha={plan['alpha']})")
    start = time.perf_counter()
    losses = code.train.distill(student, teacher, loader("distil", 1, student), epochs=epochs, T=plan["T"],
                                alpha=plan["alpha"], lr=plan["lr"])
    measure(DISTILLED, "distil", student, losses, time.perf_counter() - start)

    log("training the same Student on hard labels only")
    start = time.perf_counter()
    losses = code.train.train_model(hard_student, loader("hard labels", 1, hard_student), epochs=epochs,
                                    lr=plan["lr"])
    measure(HARD, "hard labels", hard_student, losses, time.perf_counter() - start)
    log("timing the models (1 image and 1,000 images, interleaved, on one thread)")
    for name, by_batch in time_models({TEACHER: teacher, DISTILLED: student, HARD: hard_student}).items():
        reports[name].latency_ms = {b: t.median_ms for b, t in by_batch.items()}
        reports[name].latency_iqr_ms = {b: t.iqr_ms for b, t in by_batch.items()}
    return reports
