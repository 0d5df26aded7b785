"""`learnkd reference`, `learnkd report` and `learnkd experiment`: train on real MNIST, measure, draw.

A thin click layer over grader.lab.report, grader.lab.plots and grader.lab.experiments; torch is imported inside the
commands so that `learnkd --help` stays fast. Output folders (created when missing):

    learnkd reference   ./learnkd-reference/    report.json + 5 PNG figures (the reference solutions)
    learnkd report      ./learnkd-report/       the same, for your own exercises (grades nothing)
    learnkd experiment  ./learnkd-experiments/  experiment-<name>.json + experiment-<name>.png
"""

from __future__ import annotations

import sys
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
    """Check the device and MNIST's files, so that problems are one paragraph before any training."""
    from grader.grading import GradingError, check_data, check_device

    data = str(Path(data_dir).resolve()) if data_dir else None
    try:
        check_device(device)
        check_data(data)
    except GradingError as err:  # missing or corrupt data included: one paragraph for the user
        raise UserError(str(err)) from None
    return data


def lab_code(path: Path | None, reference: bool = False) -> tuple[Path, SimpleNamespace]:
    """The folder and code a lab command trains: the reference, or the learner's finished folder (``path``;
    None: ./exercises, found as `learnkd check` finds it)."""
    from grader.grading import SOLUTIONS
    from grader.lab.code import LabError, load_code, reference_code, require_finished

    if reference:
        return SOLUTIONS, reference_code()
    folder = submission_folder(path, False)
    try:
        code = load_code(folder)
        require_finished(code, folder)
    except LabError as err:
        raise UserError(str(err)) from None
    return folder, code


def write_report(code: SimpleNamespace, folder: Path, kind: str, seeds: int, seed: int, out: Path, device: str,
                 epochs: int | None, data_dir: Path | None, limit: int | None) -> None:
    """The common body of `reference` and `report`: train, measure, write (``grader.lab.report.make_report``), print."""
    from grader.lab import report

    data = prepare_environment(device, data_dir)
    summary, path, seconds = report.make_report(code, folder, kind, list(range(seed, seed + seeds)), out, data,
                                                device, epochs, limit, log=lambda text: click.echo(text, err=True))
    click.echo(report.format_table(summary))
    click.echo("")
    click.echo(click.wrap_text(summary["distillation_gain"]["text"], width=110))
    click.echo("")
    click.echo(f"written to {out}/: {path.name}, " + ", ".join(summary["figures"].values()))
    click.echo(f"done in {seconds:.0f} s ({summary['total_seconds']:.0f} s of training and measuring)")


@click.command()
@common_options("learnkd-reference")
@click.option("--epochs", type=click.IntRange(1, 100), help="Epochs of each training (default: topics.toml [schedule]).")
def reference(seeds, seed, out, device, data_dir, limit, epochs):
    """The instructor's reference run: the reference solutions on real MNIST, with table and figures.

    Trains the Teacher, distils the Student from it and trains the same Student on hard labels only, then
    prints test accuracy, parameters, size on disk, CPU latency (1 image and 1,000), agreement with the
    teacher and training time, and writes report.json and the PNG figures into --out.
    """
    folder, code = lab_code(None, reference=True)
    write_report(code, folder, "reference", seeds, seed, out, device, epochs, data_dir, limit)


@click.command()
@click.option("--path", type=click.Path(path_type=Path), help="Your code: a folder laid out like exercises/ (default: ./exercises).")
@common_options("learnkd-report")
@click.option("--epochs", type=click.IntRange(1, 100), help="Epochs of each training (default: topics.toml [schedule]).")
def report(path, seeds, seed, out, device, data_dir, limit, epochs):
    """The reference run's report for your own code: the same table and figures, nothing graded.

    Trains your Teacher, distils your Student and trains it on hard labels too, with your train.py and
    evaluate.py, and writes report.json and the PNG figures into --out. Every topic must be written first.
    """
    folder, code = lab_code(path)
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
    from grader.lab.teacher_cache import default_cache_dir

    folder, code = lab_code(path, reference=path is None)
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
