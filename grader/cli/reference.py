"""`learnkd reference`, `learnkd report` and `learnkd experiment`: train on real MNIST, measure, draw.

A thin click layer over grader.lab.report, grader.lab.plots and grader.lab.experiments; torch is imported inside the
commands so that `learnkd --help` stays fast. Output folders (created when missing):

    learnkd reference   ./learnkd-reference/    report.json + 5 PNG figures (the reference solutions)
    learnkd report      ./learnkd-report/       the same, for your own exercises (grades nothing)
    learnkd experiment  ./learnkd-experiments/  experiment-<name>.json + experiment-<name>.png
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from types import SimpleNamespace

import click

from grader.cli.common import DEVICES, UserError, submission_folder

EXPERIMENT_NAMES = ("temperature", "alpha", "data", "missing-digit")


def common_options(default_out: str):
    """--seeds, --seed, --out, --device, --epochs, --data-dir and the hidden --limit of a training command."""
    def decorate(command):
        for option in reversed([
            click.option("--seeds", type=click.IntRange(1, 100), default=1, show_default=True,
                         help="Repeat with this many seeds (--seed, --seed + 1, ...) and report mean and spread."),
            click.option("--seed", type=int, default=0, show_default=True, help="The first seed."),
            click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=default_out,
                         show_default=True, help="Folder for the JSON and the PNG figures."),
            click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
                         help="Where the models train (latency is always measured on the CPU)."),
            click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
                         help="Folder holding MNIST/raw/ (default: $LEARNKD_DATA, then a per-user cache)."),
            click.option("--limit", type=click.IntRange(100, None), hidden=True,
                         help="Train on the first LIMIT training images only (quick runs, tests)."),
        ]):
            command = option(command)
        return command
    return decorate


def prepare_environment(device: str, data_dir: Path | None) -> str | None:
    """Check the device and read MNIST once, so that problems are one paragraph before any training."""
    from grader.grading import GradingError, check_data, check_device

    data = str(Path(data_dir).resolve()) if data_dir else None
    try:
        check_device(device)
        check_data(data)
    except GradingError as err:  # missing or corrupt data included: one paragraph for the user
        raise UserError(str(err)) from None
    return data


def learner_frame(err: BaseException, folder: Path) -> str:
    """'exercises/models.py:23' for the deepest frame of ``err`` in the learner's folder, or ''."""
    from grader.grading.submission import display_path

    where = ""
    for frame in traceback.extract_tb(err.__traceback__):
        if Path(frame.filename).resolve().parent == folder.resolve():
            where = f"{display_path(frame.filename)}:{frame.lineno}"
    return where


def load_code(folder: Path) -> SimpleNamespace:
    """The modules of a folder laid out like exercises/; UserError when a file does not even import."""
    from grader.grading.submission import load_submission

    submission = load_submission(folder)
    if submission.errors:
        problems = "; ".join(str(e) for e in submission.errors.values())
        raise UserError(f"Your code in {folder} cannot be run: {problems}. Fix it (learnkd check tells you more), "
                         "then run this again.")
    return SimpleNamespace(models=submission.models, loss=submission.loss, train=submission.train,
                           evaluate=submission.evaluate)


def unfinished_parts(code: SimpleNamespace, folder: Path) -> tuple[list[str], str | None]:
    """Run each function of the contract once on two random images; (stubs still raising, other failure)."""
    import torch

    x, y = torch.randn(4, 1, 28, 28), torch.tensor([0, 1, 2, 3])
    batches = [(x, y)]
    stubs, failure = [], None
    steps = [
        ("models.py: Teacher", lambda: code.models.Teacher()(x)),
        ("models.py: Student", lambda: code.models.Student()(x)),
        ("loss.py: distillation_loss", lambda: code.loss.distillation_loss(torch.randn(4, 10), torch.randn(4, 10), y)),
        ("train.py: train_model", lambda: code.train.train_model(code.models.Student(), batches, epochs=1)),
        ("train.py: distill", lambda: code.train.distill(code.models.Student(), code.models.Teacher(), batches, epochs=1)),
        ("evaluate.py: evaluate", lambda: code.evaluate.evaluate(code.models.Student(), batches)),
    ]
    for name, step in steps:
        try:
            step()
        except NotImplementedError:
            stubs.append(name)
        except Exception as err:  # the learner's bug: say where, once
            if failure is None:
                where = learner_frame(err, folder)
                failure = f"{name} raised {type(err).__name__}: {err}" + (f" (at {where})" if where else "")
    return stubs, failure


def require_finished(code: SimpleNamespace, folder: Path) -> None:
    stubs, failure = unfinished_parts(code, folder)
    if stubs:
        raise UserError(
            f"Your code in {folder} is not finished: {', '.join(stubs)} still raise NotImplementedError, the stub's "
            "placeholder. learnkd report trains your own models, so every topic must be written first: run "
            "`learnkd check` to grade the next topic, and `learnkd check all` once they pass; then run "
            "`learnkd report` again. (`learnkd reference` shows the report of the reference solutions.)")
    if failure:
        raise UserError(f"Your code in {folder} fails on two random images: {failure}. Run `learnkd check` to find "
                         "out what is wrong, then run `learnkd report` again.")


def reference_code() -> SimpleNamespace:
    from solutions import evaluate, loss, models, train

    return SimpleNamespace(models=models, loss=loss, train=train, evaluate=evaluate)


def write_report(code: SimpleNamespace, folder: Path, kind: str, seeds: int, seed: int, out: Path, device: str,
                 epochs: int | None, data_dir: Path | None, limit: int | None) -> None:
    """The common body of `reference` and `report`: train, measure, write JSON and figures, print."""
    from grader.lab import plots, report
    from grader.lab.data import load_mnist
    from grader.course.topics import schedule

    import time

    start = time.perf_counter()
    data = prepare_environment(device, data_dir)
    out.mkdir(parents=True, exist_ok=True)
    stream = sys.stderr
    plan = dict(schedule(), epochs=epochs or schedule()["epochs"])
    click.echo(f"{kind}: {seeds} seed{'s' if seeds > 1 else ''} x (Teacher, distilled Student, Student on hard "
               f"labels), {plan['epochs']} epochs each, on {device}; code: {folder}", err=True)
    run = report.run_report(code, list(range(seed, seed + seeds)), data_dir=data, device=device, epochs=epochs,
                            limit=limit, stream=stream, log=lambda text: click.echo(text, err=True))
    x_test, y_test = load_mnist("test", data)
    train_examples = len(load_mnist("train", data, limit)[1])
    summary = report.summarise(run, kind, str(folder), plan, train_examples, y_test, device)
    click.echo("drawing the figures", err=True)
    summary["figures"] = plots.report_figures(summary, run.runs[0]["teacher"].logits, x_test, y_test, out)
    path = report.write_json(summary, out)
    click.echo(report.format_table(summary))
    click.echo("")
    click.echo(click.wrap_text(summary["distillation_gain"]["text"], width=110))
    click.echo("")
    click.echo(f"written to {out}/: {path.name}, " + ", ".join(summary["figures"].values()))
    click.echo(f"done in {time.perf_counter() - start:.0f} s ({summary['total_seconds']:.0f} s of training and "
               "measuring)")


@click.command()
@common_options("learnkd-reference")
@click.option("--epochs", type=click.IntRange(1, 100), help="Epochs of each training (default: topics.toml [schedule]).")
def reference(seeds, seed, out, device, data_dir, limit, epochs):
    """The instructor's reference run: the reference solutions on real MNIST, with table and figures.

    Trains the Teacher, distils the Student from it and trains the same Student on hard labels only, then
    prints test accuracy, parameters, size on disk, CPU latency (1 image and 1,000), agreement with the
    teacher and training time, and writes report.json and the PNG figures into --out.
    """
    from grader.grading import SOLUTIONS

    write_report(reference_code(), SOLUTIONS, "reference", seeds, seed, out, device, epochs, data_dir, limit)


@click.command()
@click.option("--path", type=click.Path(path_type=Path), help="Your code: a folder laid out like exercises/ (default: ./exercises).")
@common_options("learnkd-report")
@click.option("--epochs", type=click.IntRange(1, 100), help="Epochs of each training (default: topics.toml [schedule]).")
def report(path, seeds, seed, out, device, data_dir, limit, epochs):
    """The reference run's report for your own code: the same table and figures, nothing graded.

    Trains your Teacher, distils your Student and trains it on hard labels too, with your train.py and
    evaluate.py, and writes report.json and the PNG figures into --out. Every topic must be written first.
    """
    folder = submission_folder(path, False)
    code = load_code(folder)
    require_finished(code, folder)
    write_report(code, folder, "report", seeds, seed, out, device, epochs, data_dir, limit)


@click.command()
@click.argument("name", type=click.Choice(EXPERIMENT_NAMES))
@click.option("--seeds", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Repeat each point with this many seeds and report mean and spread.")
@click.option("--seed", type=int, default=0, show_default=True, help="The first seed.")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default="learnkd-experiments",
              show_default=True, help="Folder for experiment-NAME.json and experiment-NAME.png.")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True)
@click.option("-T", "--temperature", "T", type=click.FloatRange(min=0, min_open=True),
              help="Temperature where it is held fixed (default 4; missing-digit: 8).")
@click.option("--alpha", type=click.FloatRange(0, 1), help="Weight of the soft term where it is held fixed (default 0.9).")
@click.option("--examples", type=click.IntRange(100, None), default=1000, show_default=True,
              help="Labelled images the Student sees in `temperature` and `alpha`.")
@click.option("--steps", type=click.IntRange(1, None),
              help="Optimizer steps of every Student run (default: as many as the reference run's training).")
@click.option("--path", type=click.Path(path_type=Path), help="Run your own code (a folder laid out like exercises/) instead of the reference solutions.")
@click.option("--no-cache", is_flag=True, help="Train the Teacher again even when a cached one fits the code.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder holding MNIST/raw/ (default: $LEARNKD_DATA, then a per-user cache).")
@click.option("--limit", type=click.IntRange(100, None), hidden=True, help="Use the first LIMIT training images only.")
def experiment(name, seeds, seed, out, device, T, alpha, examples, steps, path, no_cache, data_dir, limit):
    """Where soft labels change the game: temperature, alpha, data or missing-digit.

    \b
    temperature    Student accuracy across T (1, 2, 4, 8, 20) at a fixed alpha, on --examples labelled images
    alpha          accuracy across alpha (0 = hard labels only ... 1 = soft targets only) at a fixed T
    data           hard labels against distillation with 500, 1,000, 5,000 and all the labelled images
    missing-digit  the Student never sees a 3 (Hinton et al. 2015): how many test 3s does it recognise?

    One Teacher is trained on every label (or taken from the cache); every Student run takes the same
    number of optimizer steps. Writes experiment-NAME.json and experiment-NAME.png into --out.
    """
    from grader.lab import experiments
    from grader.grading import SOLUTIONS
    from grader.lab.teacher_cache import default_cache_dir

    if path:
        folder = submission_folder(path, False)
        code = load_code(folder)
        require_finished(code, folder)
    else:
        folder, code = SOLUTIONS, reference_code()
    data = prepare_environment(device, data_dir)
    stream = sys.stderr
    lab = experiments.prepare(code, folder, data, device, limit, steps, None if no_cache else default_cache_dir(),
                              stream, log=lambda text: click.echo(text, err=True))
    click.echo(f"experiment {name}: {lab.steps} steps per Student run, {seeds} seed{'s' if seeds > 1 else ''}",
               err=True)
    result = experiments.run_experiment(name, lab, out, list(range(seed, seed + seeds)), str(folder), T, alpha,
                                        examples)
    print_experiment(result)
    click.echo(f"written to {out}/: experiment-{name}.json, {result['figure']}")


def print_experiment(result: dict) -> None:
    click.echo(result["title"])
    if "series" in result:
        for series_name, points in result["series"].items():
            cells = "  ".join(f"{p['label']}: {p['accuracy']['mean']:.2%}" + (
                f" ± {p['accuracy']['std']:.2%}" if len(p["accuracy"]["values"]) > 1 else "") for p in points)
            click.echo(f"  {series_name:<12}{cells}")
    else:
        for student, row in result["students"].items():
            click.echo(f"  {student:<28} test 3s {row['threes']['mean']:.1%} -> {row['threes_corrected']['mean']:.1%}"
                       f" with bias +{row['bias']['mean']:g};  all digits {row['accuracy']['mean']:.2%} -> "
                       f"{row['accuracy_corrected']['mean']:.2%}")
    click.echo(click.wrap_text(result["text"], width=110))


if __name__ == "__main__":  # pragma: no cover
    sys.exit("run it as `learnkd reference`, `learnkd report` or `learnkd experiment`")
