"""The reference run and the learner's report: the pipeline over seeds, its table, its JSON, its wording.

`learnkd reference` runs ``run_report`` with the reference solutions, `learnkd report` with the learner's
exercises; both write ``report.json`` (schema below) and the figures of ``grader.lab.plots`` into one folder.

report.json, schema "learnkd-report/1" (a stat is {"mean", "std", "values"}: one value per seed, std is the
sample standard deviation, 0 for one seed; accuracies and agreement are fractions in [0, 1]):

    schema, kind ("reference" | "report"), code (folder of the code run), created (ISO time),
    environment {torch, device, threads (the first seed's training threads), platform},
    schedule {batch_size, epochs, lr, T, alpha},
    train_examples, test_examples, seeds [int], total_seconds (the trainings and measurements, all seeds),
    models {teacher | student_distilled | student_hard: {
        name, parameters, size_kb, accuracy stat, agreement stat, latency_ms_batch_1 stat,
        latency_ms_batch_1000 stat (the medians of grader.lab.latency, one per seed), latency_iqr_ms_batch_1 stat,
        latency_iqr_ms_batch_1000 stat (their interquartile ranges), latency_noisy_batch_1,
        latency_noisy_batch_1000 (bool: some seed's spread too wide to trust), train_seconds stat,
        confusion (10 x 10 counts of the first seed, rows true digit, columns predicted),
        runs [one per seed: ModelReport.to_dict()]}},
    distillation_gain {points stat (distilled minus hard-label accuracy, in percentage points), measurable
        (bool), text (the sentence printed under the table)},
    figures {name: file name in the same folder}
"""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Callable

from grader.lab import latency
from grader.lab.pipeline import DISTILLED, HARD, LATENCY_BATCHES, TEACHER, ModelReport, comparison_table, run_pipeline, table_notes

SCHEMA = "learnkd-report/1"
KEYS = {TEACHER: "teacher", DISTILLED: "student_distilled", HARD: "student_hard"}
# Below this many percentage points, two test accuracies of one seed each are not told apart: on 10,000
# test images a 98.5% accuracy has a binomial standard error of 0.12 points, and the same recipe with
# another seed moves by 0.1-0.2 points (benchmarks/). With several seeds the spread of the gain counts too.
NOISE_POINTS = 0.3
EXPERIMENT_HINT = ("Soft labels make the difference when labels are scarce: `learnkd experiment data` trains "
                   "the Student on 1,000 labelled images with and without the teacher, and `learnkd experiment "
                   "missing-digit` hides every 3 from it.")


@dataclass
class Run:
    """A report's runs: one dict of ModelReports per seed; the first seed's keep their models for the figures."""
    seeds: list[int]
    runs: list[dict[str, ModelReport]] = field(default_factory=list)
    seconds: float = 0.0
    threads: list[int] = field(default_factory=list)  # the torch threads each seed trained on


def run_report(code: SimpleNamespace, seeds: list[int], data_dir=None, device: str = "cpu",
               epochs: int | None = None, limit: int | None = None, stream=None,
               log: Callable[[str], None] = lambda text: None) -> Run:
    """The pipeline once per seed, measuring curves; the first seed keeps its models and logits.

    Each seed trains on the cores other processes leave idle when it starts (``threads_for_load``, the
    worker's rule in `check all`): on an idle 2-core machine two threads take a Teacher step a fifth faster
    than one, on a busy one 1.5-7x slower (benchmarks/bench_threads.py); the count is put back afterwards.
    """
    import torch

    from grader.lab.cores import threads_for_load

    run = Run(list(seeds))
    start = time.perf_counter()
    before = torch.get_num_threads()
    try:
        for number, seed in enumerate(seeds):
            prefix = f"seed {seed} ({number + 1}/{len(seeds)}): " if len(seeds) > 1 else ""
            torch.set_num_threads(threads_for_load(os.cpu_count() or 1))
            run.threads.append(torch.get_num_threads())
            log(prefix + f"training on {torch.get_num_threads()} thread{'s' if torch.get_num_threads() > 1 else ''} "
                "(the cores other processes leave idle)")
            run.runs.append(run_pipeline(code, data_dir=data_dir, device=device, seed=seed, epochs=epochs,
                                         stream=stream, log=lambda text: log(prefix + text), limit=limit,
                                         curves=True, keep=number == 0))
    finally:
        torch.set_num_threads(before)
    run.seconds = time.perf_counter() - start
    return run


def stat(values: list[float]) -> dict:
    values = [float(v) for v in values]
    return {"mean": statistics.fmean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "values": values}


def confusion(true, predicted, classes: int = 10) -> list[list[int]]:
    """Counts[true digit][predicted digit]."""
    counts = [[0] * classes for _ in range(classes)]
    for t, p in zip(true.tolist(), predicted.tolist()):
        counts[t][p] += 1
    return counts


def summarise(run: Run, kind: str, code_folder: str, schedule: dict, train_examples: int, y_test,
              device: str = "cpu") -> dict:
    """The report as JSON values (schema "learnkd-report/1", see the module docstring)."""
    import torch

    models = {}
    for name, key in KEYS.items():
        reports = [r[name] for r in run.runs]
        first = reports[0]
        models[key] = {
            **model_figures(reports),
            "confusion": confusion(y_test, first.logits.argmax(dim=1)) if first.logits is not None else None,
            "runs": [r.to_dict() for r in reports],
        }
    gains = [100 * (r[DISTILLED].accuracy - r[HARD].accuracy) for r in run.runs]
    summary = {
        "schema": SCHEMA, "kind": kind, "code": str(code_folder), "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "environment": {"torch": torch.__version__, "device": device, "threads": run.threads[0] if run.threads else torch.get_num_threads(),
                        "platform": platform.platform()},
        "schedule": dict(schedule), "train_examples": train_examples, "test_examples": len(y_test),
        "seeds": list(run.seeds), "total_seconds": run.seconds, "models": models,
        "distillation_gain": {"points": stat(gains)}, "figures": {},
    }
    measurable, text = verdict(summary)
    summary["distillation_gain"].update(measurable=measurable, text=text)
    return summary


def model_figures(reports: list[ModelReport]) -> dict:
    """One model's figures over seeds (its reports, one per seed): stats of each, latencies where all have one."""
    first = reports[0]
    figures = {"name": first.name, "parameters": first.parameters, "size_kb": first.size_kb,
               "accuracy": stat([r.accuracy for r in reports]),
               "agreement": stat([r.agreement for r in reports]),
               "train_seconds": stat([r.train_seconds for r in reports])}
    for b in LATENCY_BATCHES:
        if all(b in r.latency_ms for r in reports):
            figures[f"latency_ms_batch_{b}"] = stat([r.latency_ms[b] for r in reports])
            if all(b in r.latency_iqr_ms for r in reports):
                figures[f"latency_iqr_ms_batch_{b}"] = stat([r.latency_iqr_ms[b] for r in reports])
                figures[f"latency_noisy_batch_{b}"] = any(latency.noisy(r.latency_ms[b], r.latency_iqr_ms[b])
                                                           for r in reports)
    return figures


def noise_points(gain: dict) -> float:
    """How far the distillation gain must be from 0 to count: NOISE_POINTS, or twice its standard error."""
    n = len(gain["values"])
    return max(NOISE_POINTS, 2 * gain["std"] / math.sqrt(n)) if n > 1 else NOISE_POINTS


def verdict(summary: dict) -> tuple[bool, str]:
    """What the figures show, in words: whether distillation measurably helped, and what the Student costs."""
    m = summary["models"]
    teacher, distilled, hard = m["teacher"], m["student_distilled"], m["student_hard"]
    gain = summary["distillation_gain"]["points"]
    threshold = noise_points(gain)
    measurable = abs(gain["mean"]) > threshold
    n = len(summary["seeds"])
    seeds = f"mean of {n} seeds" if n > 1 else "one seed"
    acc = lambda model: f"{model['accuracy']['mean']:.2%}"  # noqa: E731
    slower = distilled["train_seconds"]["mean"] / max(hard["train_seconds"]["mean"], 1e-9)
    data = f"{summary['train_examples']:,} training images"
    if not measurable:
        claim = (f"On {data} the distilled Student ({acc(distilled)}) and the same Student trained on hard "
                 f"labels only ({acc(hard)}) are {abs(gain['mean']):.2f} points apart ({seeds}), within the "
                 f"run-to-run noise of about {threshold:.1f} points: distillation gives no measurable gain here, "
                 f"and distilling took {slower:.1f}x as long (every batch also goes through the teacher). "
                 "Here the hard labels already teach this Student as much as the teacher does.")
    elif gain["mean"] > 0:
        claim = (f"On {data} distillation helped: the distilled Student reached {acc(distilled)}, "
                 f"{gain['mean']:.2f} points above the same Student on hard labels only ({acc(hard)}; {seeds}, "
                 f"noise about {threshold:.1f} points), for {slower:.1f}x the training time.")
    else:
        claim = (f"On {data} distillation hurt: the distilled Student reached {acc(distilled)}, "
                 f"{-gain['mean']:.2f} points below the same Student on hard labels only ({acc(hard)}; {seeds}, "
                 f"noise about {threshold:.1f} points)."
                 + (" Check T and alpha, and that distill keeps the teacher in eval mode." if summary["kind"] == "report"
                    else ""))
    ratio = teacher["parameters"] / max(distilled["parameters"], 1)
    cost = (f"The Student has {ratio:.0f}x fewer parameters than the Teacher ({distilled['size_kb']:.0f} KB "
            f"against {teacher['size_kb']:.0f} KB on disk), {speed_phrase(teacher, distilled)}, "
            f"and gives the teacher's answer on {distilled['agreement']['mean']:.1%} of the test images; the "
            f"Teacher reached {acc(teacher)}.")
    return measurable, f"{claim} {cost} {EXPERIMENT_HINT}"


def speed_phrase(teacher: dict, student: dict) -> str:
    """How much faster the Student answers one image, said only as far as the measurement carries it."""
    t, s = teacher.get("latency_ms_batch_1"), student.get("latency_ms_batch_1")
    if t is None or s is None:
        return "answers one image in a time the grader could not measure"
    if teacher.get("latency_noisy_batch_1") or student.get("latency_noisy_batch_1"):
        return "answers one image in a time too noisy to compare on this busy machine (see the table)"
    # the spread of each figure: half its interquartile range, or its spread over seeds, whichever is wider
    half = lambda m: max(m.get("latency_iqr_ms_batch_1", {}).get("mean", 0.0) / 2,  # noqa: E731
                         m["latency_ms_batch_1"]["std"])
    if abs(t["mean"] - s["mean"]) <= max(half(teacher) + half(student), 0.1 * max(t["mean"], s["mean"])):
        return ("answers one image about as fast on the CPU (the two times are within their spread: one image "
                "is too little work for the size to show)")
    speed = t["mean"] / max(s["mean"], 1e-9)
    if speed >= 1:
        return f"answers one image {speed:.1f}x faster on the CPU"
    return f"answers one image {1 / speed:.1f}x slower on the CPU"


def reading(reports: dict[str, ModelReport], train_examples: int, kind: str = "report") -> str | None:
    """The sentence under `learnkd reference`'s table (``verdict``) for one run's three reports; None without all
    three, or without the teacher's agreement."""
    if any(reports.get(name) is None or reports[name].agreement is None for name in (TEACHER, DISTILLED, HARD)):
        return None
    gain = 100 * (reports[DISTILLED].accuracy - reports[HARD].accuracy)
    summary = {"kind": kind, "seeds": [0], "train_examples": train_examples,
               "models": {KEYS[name]: model_figures([reports[name]]) for name in (TEACHER, DISTILLED, HARD)},
               "distillation_gain": {"points": stat([gain])}}
    return verdict(summary)[1]


def comparison_text(reports: dict[str, ModelReport], train_examples: int, test_examples: int,
                    width: int = 110) -> str:
    """`learnkd check all`'s comparison: the table, what its columns mean, and the reading of `learnkd reference`."""
    import textwrap

    lines = comparison_table(reports).splitlines() + [""]
    for note in table_notes(test_examples):
        lines += textwrap.wrap(note, width, subsequent_indent="  ")
    text = reading(reports, train_examples)
    if text:
        lines += [""] + textwrap.wrap(text, width)
    return "\n".join(lines)


def cell(s: dict, fmt: str, scale: float = 1.0) -> str:
    """A stat as 'mean' or 'mean ± std' when there are several seeds."""
    text = format(s["mean"] * scale, fmt)
    return text + (f" ± {format(s['std'] * scale, fmt)}" if len(s["values"]) > 1 else "")


def latency_cell(model: dict, batch: int, fmt: str) -> str:
    """A latency: 'noisy' when some seed's spread was too wide to trust; for one seed 'median ± IQR/2', for
    several 'mean ± std' of the seeds' medians."""
    s = model.get(f"latency_ms_batch_{batch}")
    if s is None:
        return "-"
    if model.get(f"latency_noisy_batch_{batch}"):
        return latency.NOISY
    iqr = model.get(f"latency_iqr_ms_batch_{batch}")
    if len(s["values"]) == 1 and iqr is not None:
        return f"{format(s['mean'], fmt)} ± {format(iqr['mean'] / 2, fmt)}"
    return cell(s, fmt)


COLUMNS = ["model", "test accuracy (%)", "parameters", "size (KB)", "latency 1 image (ms)",
           "latency 1000 images (ms)", "agrees with teacher (%)", "training (s)"]


def table_rows(summary: dict) -> list[list[str]]:
    rows = []
    for model in summary["models"].values():
        rows.append([model["name"], cell(model["accuracy"], ".2f", 100), f"{model['parameters']:,}",
                     f"{model['size_kb']:.1f}", latency_cell(model, 1, ".2f"),
                     latency_cell(model, 1000, ".0f"), cell(model["agreement"], ".1f", 100),
                     cell(model["train_seconds"], ".1f")])
    return rows


def format_table(summary: dict, markdown: bool = False) -> str:
    """The comparison as aligned text (or a Markdown table, for the README)."""
    from grader.lab.table import text_table

    return text_table(COLUMNS, table_rows(summary), markdown=markdown)


def write_json(summary: dict, folder: Path) -> Path:
    """report.json in ``folder``, written whole or not at all."""
    path = Path(folder) / "report.json"
    partial = path.with_name(".report.json.learnkd-tmp")
    partial.write_text(json.dumps(summary, indent=2))
    partial.replace(path)
    return path


def make_report(code, folder: Path, kind: str, seeds: list[int], out: Path, data_dir: str | None, device: str,
                epochs: int | None, limit: int | None, log: Callable[[str], None] = lambda text: None,
                stream=None) -> tuple[dict, Path, float]:
    """`learnkd reference` and `learnkd report`: train the three models of ``code`` for each seed, measure
    them, write report.json and the figures into ``out``. Returns (summary, report.json's path, seconds)."""
    import sys

    from grader.course.topics import schedule
    from grader.lab import plots
    from grader.lab.data import load_mnist

    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    plan = dict(schedule(), epochs=epochs or schedule()["epochs"])
    log(f"{kind}: {len(seeds)} seed{'s' if len(seeds) > 1 else ''} x (Teacher, distilled Student, Student on hard "
        f"labels), {plan['epochs']} epochs each, on {device}; code: {folder}")
    run = run_report(code, seeds, data_dir=data_dir, device=device, epochs=epochs, limit=limit,
                     stream=stream or sys.stderr, log=log)
    x_test, y_test = load_mnist("test", data_dir)
    train_examples = len(load_mnist("train", data_dir, limit)[1])
    summary = summarise(run, kind, str(folder), plan, train_examples, y_test, device)
    log("drawing the figures")
    summary["figures"] = plots.report_figures(summary, run.runs[0]["teacher"].logits, x_test, y_test, out)
    return summary, write_json(summary, out), time.perf_counter() - start
