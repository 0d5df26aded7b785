"""`learnkd reference`, `learnkd report` and `learnkd experiment`: what they write and what they say.

The commands run for real, on tiny subsets of MNIST (the hidden --limit option, one epoch, a few steps),
so the accuracies mean nothing here; the files, their schema, the table and the messages are what is tested.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.cli import cli
from grader.lab.report import COLUMNS, EXPERIMENT_HINT, NOISE_POINTS, format_table, verdict
from grader.course.stubs import SOLUTIONS, make_stub

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MIN_PNG_BYTES = 5_000  # the smallest figure (one panel, axes and a legend) is about 40 KB; a blank one is < 5 KB
REPORT_FIGURES = {"accuracy_vs_parameters", "training_curves", "soft_targets", "dark_knowledge", "confusion"}
MODEL_KEYS = {"teacher", "student_distilled", "student_hard"}
STAT_KEYS = {"mean", "std", "values"}
QUICK = ["--limit", "300", "--epochs", "1"]  # 3 batches of 128: seconds, not minutes


def invoke(args: list[str], mnist_dir: Path, **env):
    return CliRunner().invoke(cli, args, env={"LEARNKD_DATA": str(mnist_dir), **env}, catch_exceptions=False)


def assert_png(path: Path) -> None:
    assert path.is_file(), f"{path.name} was not written"
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE) and len(data) > MIN_PNG_BYTES, f"{path.name} is not a real PNG ({len(data)} bytes)"


pytestmark = pytest.mark.usefixtures("least_timing")  # the latencies are measured, not tested, here


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, mnist_dir, least_timing):
    out = tmp_path_factory.mktemp("reference")
    result = invoke(["reference", *QUICK, "--seeds", "2", "--out", str(out)], mnist_dir)
    return result, out


@pytest.mark.slow
def test_reference_writes_the_report_and_every_figure(reference_run):
    result, out = reference_run
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "report.json").read_text())
    assert summary["schema"] == "learnkd-report/1" and summary["kind"] == "reference"
    assert summary["seeds"] == [0, 1] and summary["train_examples"] == 300 and summary["test_examples"] == 10_000
    assert summary["schedule"]["epochs"] == 1
    assert set(summary["models"]) == MODEL_KEYS
    for key, model in summary["models"].items():
        for name in ("accuracy", "agreement", "latency_ms_batch_1", "latency_ms_batch_1000", "train_seconds"):
            assert set(model[name]) == STAT_KEYS and len(model[name]["values"]) == 2, (key, name)
        assert 0.0 <= model["accuracy"]["mean"] <= 1.0
        assert len(model["confusion"]) == 10 and sum(map(sum, model["confusion"])) == 10_000
        assert len(model["runs"]) == 2 and len(model["runs"][0]["losses"]) == 1
        assert model["runs"][0]["curve"], f"{key}: no training curve was measured"
    assert summary["models"]["teacher"]["agreement"]["values"] == [1.0, 1.0]
    assert summary["models"]["student_distilled"]["parameters"] == summary["models"]["student_hard"]["parameters"]
    assert summary["models"]["teacher"]["parameters"] >= 10 * summary["models"]["student_distilled"]["parameters"]
    gain = summary["distillation_gain"]
    assert gain["points"]["values"] == pytest.approx(
        [100 * (d["accuracy"] - h["accuracy"]) for d, h in
         zip(summary["models"]["student_distilled"]["runs"], summary["models"]["student_hard"]["runs"])])
    assert gain["text"] in result.output.replace("\n", " ") or gain["text"][:60] in result.output
    assert set(summary["figures"]) == REPORT_FIGURES
    for name in summary["figures"].values():
        assert_png(out / name)


@pytest.mark.slow
def test_reference_prints_the_table_with_every_column(reference_run):
    result, _ = reference_run
    header = next(line for line in result.output.splitlines() if line.startswith("model"))
    for column in COLUMNS:
        assert column in header, f"column {column!r} missing from {header!r}"
    for name in ("teacher", "student (distilled)", "student (hard labels)"):
        assert any(line.startswith(name) and "±" in line for line in result.output.splitlines()), name


def folder_with(tmp_path: Path, stubbed: str | None = None) -> Path:
    """A copy of solutions/ as a learner's exercises folder, with one file back to its stub."""
    folder = tmp_path / "exercises"
    shutil.copytree(SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    if stubbed:
        topic = stubbed.removesuffix(".py")
        (folder / stubbed).write_text(make_stub((SOLUTIONS / stubbed).read_text(), topic, stubbed))
    return folder


@pytest.mark.slow
def test_report_runs_the_learners_own_code(tmp_path, mnist_dir):
    out = tmp_path / "out"
    result = invoke(["report", "--path", str(folder_with(tmp_path)), *QUICK, "--out", str(out)], mnist_dir)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "report.json").read_text())
    assert summary["kind"] == "report" and summary["code"].endswith("exercises")
    assert len(list(out.glob("*.png"))) == len(REPORT_FIGURES)


def test_report_on_unfinished_code_says_so_in_one_paragraph(tmp_path, mnist_dir):
    out = tmp_path / "out"
    result = invoke(["report", "--path", str(folder_with(tmp_path, "train.py")), "--out", str(out)], mnist_dir)
    assert result.exit_code == 2, result.output
    assert "not finished" in result.output and "train.py: train_model" in result.output
    assert "train.py: distill" in result.output and "models.py" not in result.output
    assert "Traceback" not in result.output and not (out / "report.json").exists()


def test_report_on_code_that_crashes_names_the_learners_line(tmp_path, mnist_dir):
    folder = folder_with(tmp_path)
    source = (folder / "evaluate.py").read_text()
    (folder / "evaluate.py").write_text(source.replace("correct / total", "correct / undefined_total"))
    result = invoke(["report", "--path", str(folder)], mnist_dir)
    assert result.exit_code == 2, result.output
    assert "NameError" in result.output and "evaluate.py:" in result.output


@pytest.mark.slow
@pytest.mark.parametrize("name", ["temperature", "alpha", "data", "missing-digit"])
def test_experiment_writes_its_figure_and_json(name, tmp_path, tmp_path_factory, mnist_dir):
    cache = tmp_path_factory.getbasetemp() / "xdg-cache"  # one teacher for the four experiments
    out = tmp_path / "out"
    result = invoke(["experiment", name, "--limit", "600", "--steps", "3", "--out", str(out)], mnist_dir,
                    XDG_CACHE_HOME=str(cache))
    assert result.exit_code == 0, result.output
    data = json.loads((out / f"experiment-{name}.json").read_text())
    assert data["schema"] == "learnkd-experiment/1" and data["experiment"] == name
    assert data["text"] and data["title"] and data["settings"]["steps"] == 3
    assert 0.0 <= data["teacher"]["accuracy"] <= 1.0
    assert_png(out / data["figure"])
    if name == "missing-digit":
        assert data["test_threes"] == 1010
        for row in data["students"].values():
            assert set(row) == {"threes", "threes_corrected", "accuracy", "accuracy_corrected", "bias"}
            # the bias is chosen on held-out images, never below 0: the correction can only add 3s
            assert row["bias"]["mean"] >= 0
    else:
        expected = {"temperature": [1, 2, 4, 8, 20], "alpha": [0.0, 0.25, 0.5, 0.75, 0.9, 1.0],
                    "data": [500, 600]}[name]
        assert [p["x"] for p in data["series"]["distilled"]] == expected
        for points in data["series"].values():
            assert all(set(p["accuracy"]) == STAT_KEYS for p in points)


def summary_with(distilled: list[float], hard: list[float]) -> dict:
    """A made-up report: three models with the given per-seed accuracies of the two students."""
    def model(name, parameters, accuracies, seconds):
        stat = lambda values: {"mean": sum(values) / len(values), "std": 0.0, "values": values}  # noqa: E731
        return {"name": name, "parameters": parameters, "size_kb": parameters * 4 / 1024,
                "accuracy": stat(accuracies), "agreement": stat([0.99] * len(accuracies)),
                "latency_ms_batch_1": stat([0.2] * len(accuracies)), "latency_ms_batch_1000": stat([30.0] * len(accuracies)),
                "train_seconds": stat([seconds] * len(accuracies))}
    gains = [100 * (d - h) for d, h in zip(distilled, hard)]
    mean = sum(gains) / len(gains)
    std = (sum((g - mean) ** 2 for g in gains) / (len(gains) - 1)) ** 0.5 if len(gains) > 1 else 0.0
    return {"kind": "reference", "seeds": list(range(len(distilled))), "train_examples": 60_000,
            "models": {"teacher": model("teacher", 409_386, [0.992] * len(distilled), 30.0),
                       "student_distilled": model("student (distilled)", 9_274, distilled, 12.0),
                       "student_hard": model("student (hard labels)", 9_274, hard, 4.0)},
            "distillation_gain": {"points": {"mean": mean, "std": std, "values": gains}}}


def test_the_wording_says_no_gain_when_the_students_are_within_noise():
    measurable, text = verdict(summary_with([0.9852, 0.9848], [0.9846, 0.9850]))
    assert not measurable
    assert "no measurable gain" in text and "3.0x as long" in text and EXPERIMENT_HINT in text
    assert "44x fewer parameters" in text


def test_the_wording_says_distillation_helped_only_beyond_the_noise():
    gap = NOISE_POINTS / 100 + 0.01  # one point more than the noise
    measurable, text = verdict(summary_with([0.95 + gap], [0.95]))
    assert measurable and "distillation helped" in text and f"{100 * gap:.2f} points above" in text
    measurable, text = verdict(summary_with([0.95 - gap], [0.95]))
    assert measurable and "distillation hurt" in text


def test_the_markdown_table_has_a_row_per_model():
    table = format_table(summary_with([0.985, 0.986], [0.984, 0.985]), markdown=True).splitlines()
    assert table[0] == "| " + " | ".join(COLUMNS) + " |"
    assert len(table) == 5 and table[2].startswith("| teacher | 99.20 ± 0.00 | 409,386 |")
