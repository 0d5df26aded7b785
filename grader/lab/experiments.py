"""`learnkd experiment`: where soft labels change the game, measured.

Every experiment trains the course's Student with the course's own `train_model` / `distill` (the reference
solutions, or the learner's with --path) against one Teacher trained once on all the training labels and kept
in the teacher cache. Every Student run takes the same number of optimizer steps (by default as many as the
reference run's: the schedule's epochs over the full training set), however few examples it sees, so that
a small data set is not also a short training.

    temperature    accuracy across T at a fixed alpha (on `examples` labelled images)
    alpha          accuracy across alpha at a fixed T (alpha = 0 is hard labels only)
    data           hard labels against distillation on 500, 1,000, 5,000 and all the labelled images
    missing-digit  Hinton et al. (2015, sec. 3): the Student never sees a 3; how many test 3s does it get?

Each writes experiment-<name>.json (schema "learnkd-experiment/1") and experiment-<name>.png.
JSON: schema, experiment, title, text (what the figures show, in words), code, created, settings {T, alpha,
examples, steps, seeds, batch_size, lr, ...}, teacher {accuracy, cached}, and either x_label + series
{series name: [{x, label, accuracy stat}]} or (missing-digit) test_threes + students {name: {threes,
threes_corrected, accuracy, accuracy_corrected, bias}: stats}; a stat is {"mean", "std", "values"} over seeds.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

import torch
from torch import Tensor, nn

from grader.lab.data import Batches, load_mnist
from grader.lab.pipeline import test_logits, train_teacher
from grader.lab.report import stat
from grader.course.topics import schedule

SCHEMA = "learnkd-experiment/1"
NAMES = ("temperature", "alpha", "data", "missing-digit")
TEMPERATURES = (1, 2, 4, 8, 20)
ALPHAS = (0.0, 0.25, 0.5, 0.75, 0.9, 1.0)
DATA_SIZES = (500, 1000, 5000, None)  # None: every training image
# Where soft labels matter: with 1,000 labels a 4k-parameter CNN student went from about 93.5% (hard
# labels) to 95.5-96.5% (distilled, T=4, alpha=0.9) when this course was written.
DEFAULT_T, DEFAULT_ALPHA, DEFAULT_EXAMPLES = 4.0, 0.9, 1000
# Hinton et al. distilled at a high temperature for the missing-digit run: what the teacher thinks of "3"
# hides in the small probabilities it gives to 3 for 5s and 8s, which a high T brings out.
MISSING_DIGIT, MISSING_T = 3, 8.0
HELD_OUT = 5000  # the last training images: never trained on; they choose the bias correction
BIAS_GRID = [b / 4 for b in range(0, 81)]  # 0 to 20 in steps of 0.25


@dataclass
class Lab:
    """What every experiment shares: the data, the trained teacher, the code, where progress goes."""
    code: SimpleNamespace
    x_train: Tensor
    y_train: Tensor
    x_test: Tensor
    y_test: Tensor
    teacher: nn.Module
    teacher_accuracy: float
    teacher_cached: bool
    plan: dict
    steps: int
    device: str = "cpu"
    stream: object = None
    bar: object = None


def prepare(code, folder: Path, data_dir=None, device: str = "cpu", limit: int | None = None,
            steps: int | None = None, cache_dir=None, stream=None,
            log: Callable[[str], None] = lambda text: None) -> Lab:
    """Load MNIST and get the Teacher (trained on every training label, seed 0, or from the cache)."""
    from grader.lab.pipeline import ProgressBatches

    plan = schedule()
    x_train, y_train = load_mnist("train", data_dir, limit)
    x_test, y_test = load_mnist("test", data_dir)

    def loader(model):
        return ProgressBatches(Batches(x_train, y_train, plan["batch_size"], shuffle=True, seed=0, device=device),
                               "teacher", stream)

    teacher, _, _, cached = train_teacher(code, loader, plan, plan["epochs"], 0, device, cache_dir, folder,
                                          data_dir, limit, log)
    teacher.eval()
    accuracy = code.evaluate.evaluate(teacher, Batches(x_test, y_test, 1000, device=device))
    log(f"teacher: {accuracy:.2%} on the test set")
    full_steps = plan["epochs"] * -(-len(x_train) // plan["batch_size"])
    return Lab(code, x_train, y_train, x_test, y_test, teacher, accuracy, cached, plan, steps or full_steps,
               device, stream)


class StepBar:
    """Batches that advance one progress bar shared by all the runs of an experiment."""

    def __init__(self, batches: Batches, bar):
        self.batches, self.bar = batches, bar

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        for batch in self.batches:
            yield batch
            if self.bar is not None:
                self.bar.update(1)


def student_run(lab: Lab, x: Tensor, y: Tensor, seed: int, T: float | None = None,
                alpha: float = DEFAULT_ALPHA) -> nn.Module:
    """A Student trained on (x, y) for about ``lab.steps`` steps: distilled when T is given, else hard labels."""
    plan = lab.plan
    batches = Batches(x, y, plan["batch_size"], shuffle=True, seed=seed, device=lab.device)
    epochs = max(1, round(lab.steps / len(batches)))
    if lab.bar is not None:  # whole epochs: the run may take a few steps more or fewer than lab.steps
        lab.bar.total += epochs * len(batches)
        lab.bar.refresh()
    torch.manual_seed(1000 + seed)
    student = lab.code.models.Student().to(lab.device)
    loader = StepBar(batches, lab.bar)
    if T is None:
        lab.code.train.train_model(student, loader, epochs=epochs, lr=plan["lr"])
    else:
        lab.code.train.distill(student, lab.teacher, loader, epochs=epochs, T=T, alpha=alpha, lr=plan["lr"])
    return student


def accuracy(lab: Lab, model: nn.Module) -> float:
    return lab.code.evaluate.evaluate(model, Batches(lab.x_test, lab.y_test, 1000, device=lab.device))


def subset(lab: Lab, n: int | None, seed: int) -> tuple[Tensor, Tensor]:
    """``n`` training images drawn at random with ``seed`` (all of them for None)."""
    if n is None or n >= len(lab.x_train):
        return lab.x_train, lab.y_train
    order = torch.randperm(len(lab.x_train), generator=torch.Generator().manual_seed(seed))[:n]
    return lab.x_train[order], lab.y_train[order]


def progress_bar(lab: Lab, label: str):
    """One bar for every step of an experiment; each run adds its steps to the total as it starts."""
    if lab.stream is None:
        return None
    from tqdm import tqdm

    return tqdm(total=0, desc=label, file=lab.stream, unit="step", mininterval=0.5)


def sweep(lab: Lab, name: str, points: list[tuple[float, str, dict]], examples: int | None, seeds: list[int],
          baseline: bool) -> dict:
    """Distil one Student per point (kwargs T, alpha) and seed, plus a hard-label baseline if asked."""
    lab.bar = progress_bar(lab, name)
    series = {"distilled": []}
    for x_value, label, kwargs in points:
        values = []
        for seed in seeds:
            x, y = subset(lab, examples, seed)
            values.append(accuracy(lab, student_run(lab, x, y, seed, **kwargs)))
        series["distilled"].append({"x": x_value, "label": label, "accuracy": stat(values)})
    if baseline:
        values = [accuracy(lab, student_run(lab, *subset(lab, examples, seed), seed)) for seed in seeds]
        series["hard labels"] = [{"x": points[0][0], "label": "hard labels", "accuracy": stat(values)}]
    if lab.bar is not None:
        lab.bar.close()
    return series


def best(series: list[dict]) -> dict:
    return max(series, key=lambda point: point["accuracy"]["mean"])


def temperature(lab: Lab, seeds: list[int], examples: int | None, alpha: float, **_) -> dict:
    points = [(float(T), f"{T:g}", {"T": float(T), "alpha": alpha}) for T in TEMPERATURES]
    series = sweep(lab, "temperature", points, examples, seeds, baseline=True)
    top, hard = best(series["distilled"]), series["hard labels"][0]["accuracy"]["mean"]
    spread = ", ".join(f"T = {p['label']}: {p['accuracy']['mean']:.2%}" for p in series["distilled"])
    text = (f"With alpha = {alpha:g} the distilled Student did best at T = {top['label']} "
            f"({top['accuracy']['mean']:.2%}; {spread}); on hard labels alone it reached {hard:.2%}.")
    return {"title": f"Student accuracy across the temperature T (alpha = {alpha:g}, "
                     f"{describe(examples, lab)})",
            "x_label": "temperature T (log scale)", "log_x": True, "baseline_line": True, "series": series,
            "text": text, "settings": {"alpha": alpha}}


def alpha_sweep(lab: Lab, seeds: list[int], examples: int | None, T: float, **_) -> dict:
    points = [(a, f"{a:g}", {"T": T, "alpha": a}) for a in ALPHAS]
    series = sweep(lab, "alpha", points, examples, seeds, baseline=False)
    top, zero = best(series["distilled"]), series["distilled"][0]
    text = (f"With T = {T:g}, alpha = 0 (hard labels only) gave {zero['accuracy']['mean']:.2%}; the best was "
            f"alpha = {top['label']} with {top['accuracy']['mean']:.2%}.")
    return {"title": f"Student accuracy across alpha, the weight of the soft term (T = {T:g}, "
                     f"{describe(examples, lab)})",
            "x_label": "alpha (0: hard labels only, 1: soft targets only)", "series": series, "text": text,
            "settings": {"T": T}}


def data(lab: Lab, seeds: list[int], T: float, alpha: float, **_) -> dict:
    sizes = sorted({n for n in DATA_SIZES if n is None or n < len(lab.x_train)}, key=lambda n: n or 10**9)
    lab.bar = progress_bar(lab, "data")
    series = {"hard labels": [], "distilled": []}
    for n in sizes:
        count = n or len(lab.x_train)
        label = f"{count:,}" if n else f"all {count:,}"
        for name, kwargs in (("hard labels", {}), ("distilled", {"T": T, "alpha": alpha})):
            values = [accuracy(lab, student_run(lab, *subset(lab, n, seed), seed, **kwargs)) for seed in seeds]
            series[name].append({"x": count, "label": label, "accuracy": stat(values)})
    if lab.bar is not None:
        lab.bar.close()
    lines = []
    for hard, soft in zip(series["hard labels"], series["distilled"]):
        gain = 100 * (soft["accuracy"]["mean"] - hard["accuracy"]["mean"])
        lines.append(f"{hard['label']} images: {hard['accuracy']['mean']:.2%} -> {soft['accuracy']['mean']:.2%} "
                     f"({gain:+.2f} points)")
    text = ("Hard labels -> distilled (the Teacher itself learned from every label; the Student sees only the "
            "images of its subset): " + "; ".join(lines) + ".")
    return {"title": f"Few labels: the Student on hard labels against distilled (T = {T:g}, alpha = {alpha:g})",
            "x_label": "labelled training images the Student sees (log scale)", "log_x": True, "series": series,
            "text": text, "settings": {"T": T, "alpha": alpha}}


def shifted_accuracy(logits: Tensor, labels: Tensor, bias: float, digit: int = MISSING_DIGIT) -> tuple[float, float]:
    """(accuracy on all, accuracy on ``digit``) once ``bias`` is added to that digit's logit."""
    shifted = logits.clone()
    shifted[:, digit] += bias
    correct = shifted.argmax(dim=1) == labels
    return correct.float().mean().item(), correct[labels == digit].float().mean().item()


def missing_digit(lab: Lab, seeds: list[int], T: float, alpha: float, **_) -> dict:
    held_out = min(HELD_OUT, len(lab.x_train) // 6)
    x_keep, y_keep = lab.x_train[:-held_out], lab.y_train[:-held_out]
    x_val, y_val = lab.x_train[-held_out:], lab.y_train[-held_out:]
    transfer = y_keep != MISSING_DIGIT
    x_t, y_t = x_keep[transfer], y_keep[transfer]
    lab.bar = progress_bar(lab, "missing-digit")
    names = {"hard labels, no 3s": None, f"distilled, no 3s (T = {T:g})": T}
    rows = {name: {k: [] for k in ("threes", "threes_corrected", "accuracy", "accuracy_corrected", "bias")}
            for name in names}
    y_test = lab.y_test.cpu()
    for seed in seeds:
        for name, temperature_ in names.items():
            student = student_run(lab, x_t, y_t, seed, T=temperature_, alpha=alpha)
            # the bias on the 3's logit that does best on held-out training images (Hinton et al. chose it on
            # the test set); the student never trained on them
            val_logits = test_logits(student, x_val)
            bias = max(BIAS_GRID, key=lambda b: (shifted_accuracy(val_logits, y_val, b)[0], -b))
            logits = test_logits(student, lab.x_test)
            plain, corrected = shifted_accuracy(logits, y_test, 0.0), shifted_accuracy(logits, y_test, bias)
            for key, value in (("accuracy", plain[0]), ("threes", plain[1]), ("accuracy_corrected", corrected[0]),
                               ("threes_corrected", corrected[1]), ("bias", bias)):
                rows[name][key].append(value)
    if lab.bar is not None:
        lab.bar.close()
    students = {name: {k: stat(v) for k, v in row.items()} for name, row in rows.items()}
    hard, soft = (students[name] for name in names)
    text = (f"Trained without a single 3, the Student on hard labels recognised {hard['threes']['mean']:.1%} of the "
            f"test 3s ({hard['threes_corrected']['mean']:.1%} with its 3's bias raised by "
            f"{hard['bias']['mean']:g}); distilled at T = {T:g} it recognised {soft['threes']['mean']:.1%}, and "
            f"{soft['threes_corrected']['mean']:.1%} with its bias raised by {soft['bias']['mean']:g} "
            f"(accuracy on all test images {soft['accuracy_corrected']['mean']:.2%}). Hinton et al. report "
            "98.6% of the test 3s after the bias correction.")
    return {"title": f"The Student never sees a 3 ({len(x_t):,} training images, T = {T:g}, alpha = {alpha:g})",
            "test_threes": int((y_test == MISSING_DIGIT).sum()), "students": students, "text": text,
            "settings": {"T": T, "alpha": alpha, "held_out": held_out, "transfer_images": len(x_t)}}


def describe(examples: int | None, lab: Lab) -> str:
    n = len(lab.x_train) if examples is None else min(examples, len(lab.x_train))
    return f"{n:,} labelled images"


RUNNERS = {"temperature": temperature, "alpha": alpha_sweep, "data": data, "missing-digit": missing_digit}


def run_experiment(name: str, lab: Lab, out: Path, seeds: list[int], code_folder: str,
                   T: float | None = None, alpha: float | None = None, examples: int | None = DEFAULT_EXAMPLES) -> dict:
    """Run one experiment; write experiment-<name>.json and .png into ``out``; return the JSON values."""
    from grader.lab import plots

    if T is None:
        T = MISSING_T if name == "missing-digit" else DEFAULT_T
    alpha = DEFAULT_ALPHA if alpha is None else alpha
    start = time.perf_counter()
    result = RUNNERS[name](lab, seeds=seeds, examples=examples, T=T, alpha=alpha)
    result = {"schema": SCHEMA, "experiment": name, **result, "code": str(code_folder),
              "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "seconds": time.perf_counter() - start}
    result["settings"] = {"examples": examples if name in ("temperature", "alpha") else None, "steps": lab.steps,
                          "seeds": list(seeds), "batch_size": lab.plan["batch_size"], "lr": lab.plan["lr"],
                          **result["settings"]}
    result["teacher"] = {"accuracy": lab.teacher_accuracy, "cached": lab.teacher_cached}
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    draw = plots.missing_digit_figure if name == "missing-digit" else plots.experiment_figure
    result["figure"] = draw(result, out / f"experiment-{name}.png")
    (out / f"experiment-{name}.json").write_text(json.dumps(result, indent=2))
    return result
