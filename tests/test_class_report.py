"""The class report: a graded class of 10 (bank mistakes and correct submissions, --jobs 2) is counted right,
nothing a submission says becomes HTML, and the page renders in a real browser (headless Chromium, where
installed)."""

import csv
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from grader.classroom.report import REPORT, ReportError, read_class, render, write_report
from grader.cli import cli

ROOT = Path(__file__).resolve().parent.parent
MISTAKES = ROOT / "tests" / "mistakes"
INJECTION = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
RAISES = f'''
def soft_targets(logits, T=1.0):
    raise ValueError("{INJECTION}")


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    raise ValueError("{INJECTION}")
'''


def results(tests: list[tuple[str, str, list[str], str]]) -> dict:
    return {"tests": [{"name": name, "status": status, "tags": tags, "output": output, "score": 0, "max_score": 1}
                      for name, status, tags, output in tests]}


def write_class(out: Path, rows: list[tuple[str, str, float, str, dict]]) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "gradebook.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["submission", "source", "loss", "total", "crash"])
        writer.writerow(["(points possible)", "", "2", "2", ""])
        for name, source, score, crash, data in rows:
            writer.writerow([name, source, f"{score:g}", f"{score:g}", crash])
            (out / name).mkdir()
            (out / name / "results.json").write_text(json.dumps(data))


def test_the_report_counts_each_mistake_once_per_submission_and_escapes_everything(tmp_path):
    no_t2 = ("matches the reference", "failed", ["loss", "loss.no_T_squared"], "missing its T**2 factor")
    grad = ("gradient", "failed", ["loss", "loss.no_T_squared", "loss.alpha_swapped"], "two mistakes")  # as written
    ok = ("gradient", "passed", ["loss"], "")
    write_class(tmp_path, [
        ("a", "subs/a", 0, "", results([no_t2, grad])),  # the same mistake on two checks: one submission
        ("b", f"subs/{INJECTION}", 1, "", results([no_t2, ok])),
        ("c", "subs/c", 2, "", results([ok, ok])),
        ("d", "subs/d", 0, "grading took longer than 120 s and was stopped.",
         results([("x", "failed", ["loss"], f"your code raised ValueError: {INJECTION}")])),
    ])
    klass = read_class(tmp_path)
    page = render(klass, str(tmp_path))
    assert INJECTION not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<script" not in page.lower(), "the page runs nothing"
    assert '<code>loss.no_T_squared</code></td><td class=num title="a, b">2 of 4</td>' in page
    assert '<code>loss.alpha_swapped</code></td><td class=num title="a">1 of 4</td>' in page
    assert "<b>timeout</b>" in page and 'href="a/results.json"' in page
    assert "data:image/png;base64," in page, "the histogram is inline"


def test_class_report_without_a_gradebook_is_one_paragraph(tmp_path):
    with pytest.raises(ReportError, match="no gradebook.csv"):
        write_report(tmp_path)
    result = CliRunner().invoke(cli, ["class-report", str(tmp_path)])
    assert result.exit_code == 2 and "learnkd grade" in result.output and "Traceback" not in result.output


def made(entry: str) -> Path:
    return MISTAKES / f"{entry}.py"


@pytest.fixture(scope="module")
def graded_class(tmp_path_factory, mnist_dir):
    """10 submissions graded on loss and evaluate with --jobs 2: (the --out folder, mistake -> submissions)."""
    root = tmp_path_factory.mktemp("class")
    plan = ([("no_t2", {"loss": "loss/no_t_squared"})] * 2 + [("alpha", {"loss": "loss/alpha_swapped"})] * 2
            + [("percent", {"evaluate": "evaluate/percentage"})] * 2
            + [("both", {"loss": "loss/no_t_squared", "evaluate": "evaluate/percentage"})]
            + [("raises", {"loss": RAISES})] + [("correct", {})] * 2)
    expected = {"loss.no_T_squared": 3, "loss.alpha_swapped": 2, "evaluate.percentage": 3}
    folders = []
    for number, (label, files) in enumerate(plan):
        name = {8: "<script>alert(1)", 9: "<img src=x onerror=alert(1)>"}.get(number, f"{number:02d}-{label}")
        folder = root / "submissions" / name
        shutil.copytree(ROOT / "solutions", folder, ignore=shutil.ignore_patterns("__pycache__"))
        for topic, source in files.items():
            target = folder / f"{topic}.py"
            if source.startswith("\n"):
                target.write_text(source)
            else:
                shutil.copy(made(source), target)
        folders.append(str(folder))
    out = root / "out"
    result = CliRunner().invoke(cli, ["grade", *folders, "--out", str(out), "--jobs", "2",
                                      "--topics", "loss,evaluate", "--data-dir", str(mnist_dir)])
    assert result.exit_code == 0, result.output
    return out, expected, result.output


@pytest.mark.slow
def test_grade_writes_a_class_report_that_counts_each_named_mistake(graded_class):
    out, expected, output = graded_class
    assert "class-report.html" in output
    page = (out / REPORT).read_text()
    for mistake, count in expected.items():
        assert f"<code>{mistake}</code></td><td class=num" in page
        row = page.split(f"<code>{mistake}</code></td><td class=num", 1)[1]
        assert f">{count} of 10</td>" in row.split("</tr>", 1)[0], (mistake, row[:300])
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page, "a name shows as text"
    assert "<script" not in page.lower() and "&lt;script&gt;alert(1)" in page


@pytest.mark.slow
def test_class_report_rebuilds_the_same_page_from_the_folder(graded_class):
    out, _, _ = graded_class
    first = (out / REPORT).read_text()
    (out / REPORT).unlink()
    result = CliRunner().invoke(cli, ["class-report", str(out)])
    assert result.exit_code == 0, result.output
    strip = lambda page: page.split("; written", 1)[0] + page.split("</p>", 1)[1]  # noqa: E731 (its date differs)
    assert strip((out / REPORT).read_text()) == strip(first)


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium here (Debian: apt-get install chromium): the page is "
                                              "checked as text only")
def test_the_report_renders_in_chromium(graded_class, tmp_path):
    out, expected, _ = graded_class
    url = (out / REPORT).resolve().as_uri()
    flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path}"]
    dom = subprocess.run([CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Named mistakes" in dom.stdout and "loss.no_T_squared" in dom.stdout
    assert "<script" not in dom.stdout.lower(), "nothing a submission said became a script"
    shot = tmp_path / "class-report.png"
    subprocess.run([CHROMIUM, *flags, f"--screenshot={shot}", "--window-size=1280,2400", url],
                   capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 20_000, "a rendered page, not a blank one"
    print(f"\nthe screenshot: {shot}")
