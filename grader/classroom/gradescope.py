"""The Gradescope autograder bundle: setup.sh, run_autograder, and learnkd's source to install.

Gradescope unpacks the bundle into /autograder/source, runs setup.sh once (as root, with internet) to
build the image, then run_autograder once per submission with the learner's files in
/autograder/submission; whatever run_autograder leaves in /autograder/results/results.json is the grade.
run_autograder lays the submission out like exercises/ (``prepare`` below, the same as `learnkd grade`),
runs ``learnkd check TOPIC --path ... --json results.json`` (``--notebook`` for a notebook, so that
messages name its cells), copies that to /autograder/results/results.json, and makes sure a
results.json exists even when something failed. `learnkd check` goes through the one grading flow
(``grader.grading.run_grading``): the judge runs as root, the learner's code runs in the worker as an
unprivileged user ($LEARNKD_WORKER_USER), inside bubblewrap where the container allows it. setup.sh
makes the installed reference and grader readable by root alone (the worker's own package excepted),
so that even without a sandbox the learner's code can neither read the reference nor write the results. Its paths can be moved with
environment variables ($LEARNKD_AUTOGRADER, $LEARNKD_BIN, $LEARNKD_PYTHON, $LEARNKD_RUN_AS), which the
project's tests use to run it on a fake /autograder tree.

    python -m grader.classroom.gradescope prepare SUBMISSION WORK RESULTS TOPIC
    python -m grader.classroom.gradescope ensure-results RESULTS

The two shell scripts are ``setup.sh`` and ``run_autograder`` beside this file (package data).
"""

from __future__ import annotations

import json
import shutil
import sys
import zipfile
from pathlib import Path

import click

from grader.grading import ROOT
from grader.course.topics import ALL, topic_names

PROJECT_FILES = ["pyproject.toml", "README.md", "grader", "solutions", "exercises"]
RUN_AS = "learnkd"  # the user the learner's code runs as on Gradescope: it cannot write the results

SCRIPTS = Path(__file__).resolve().parent  # setup.sh and run_autograder: @TOPIC@ and @RUN_AS@ filled in


def write_bundle(out: Path, topic: str = ALL, data_dir: Path | None = None) -> list[Path]:
    """Write the bundle's files into ``out`` and zip them as ``out/autograder.zip``; the files written."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ("setup.sh", "run_autograder"):
        path = out / name
        path.write_text((SCRIPTS / name).read_text().replace("@TOPIC@", topic).replace("@RUN_AS@", RUN_AS))
        path.chmod(0o755)
        written.append(path)
    project = out / "learnkd"
    if project.exists():
        shutil.rmtree(project)
    for name in PROJECT_FILES:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif source.is_file():
            project.mkdir(exist_ok=True)
            shutil.copy2(source, project / name)
    written.append(project)
    if data_dir is not None:
        raw = Path(data_dir) / "MNIST" / "raw"
        shutil.copytree(raw, out / "data" / "MNIST" / "raw", dirs_exist_ok=True)
        written.append(out / "data")
    archive = out / "autograder.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(out.rglob("*")):
            if path.is_file() and path != archive:
                info = zipfile.ZipInfo.from_file(path, path.relative_to(out).as_posix())
                with open(path, "rb") as f:
                    zf.writestr(info, f.read(), zipfile.ZIP_DEFLATED)  # keeps the executable bits
    written.append(archive)
    return written


def failed_results(message: str) -> dict:
    return {"score": 0.0, "output": message, "visibility": "visible", "stdout_visibility": "visible", "tests": []}


def prepare_submission(submission: Path, work: Path, results: Path, topic: str) -> bool:
    """Lay the submission out as ``work/exercises`` (or ``work/lab.ipynb``) and write the arguments of
    `learnkd check` that name it to ``work/target``; when it cannot be, write a results.json saying why."""
    from grader.classroom.batch import find_layout, prepare

    graded = topic_names() if topic == ALL else [topic]
    # Gradescope's submission folder holds the uploaded files; a single zip or notebook is taken as it is.
    entries = [p for p in submission.iterdir() if not p.name.startswith(".")] if submission.is_dir() else [submission]
    source = entries[0] if len(entries) == 1 and entries[0].is_file() else submission
    if source.is_dir() and find_layout(source) is None:
        zips = sorted(submission.glob("*.zip"))
        source = zips[0] if zips else source
    handin = prepare(source, work, "submission", graded)
    if handin.problem:
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(failed_results(handin.problem)))
        print(handin.problem, file=sys.stderr)
        return False
    if handin.notebook is not None:
        shutil.copyfile(handin.notebook.notebook, work / "lab.ipynb")
        target = ["--notebook", str(work / "lab.ipynb")]
    else:
        shutil.move(str(handin.folder), str(work / "exercises"))
        target = ["--path", str(work / "exercises")]
    (work / "target").write_text("\n".join(target) + "\n")
    return True


def ensure_results(results: Path) -> None:
    """Leave a results.json Gradescope can read, whatever happened before."""
    try:
        json.loads(results.read_text())
    except (OSError, ValueError):
        results.parent.mkdir(parents=True, exist_ok=True)
        results.write_text(json.dumps(failed_results(
            "The autograder could not grade this submission (it stopped before writing its results). "
            "Check that it holds models.py, loss.py, train.py and evaluate.py, or the lab notebook, and submit again; "
            "if it keeps happening, tell your instructor.")))


@click.group(help="The steps of run_autograder that need Python (Gradescope).")
def main():
    pass


@main.command(help="Lay SUBMISSION out for grading in WORK; on failure write a results file at RESULTS.")
@click.argument("submission", type=click.Path(path_type=Path))
@click.argument("work", type=click.Path(path_type=Path))
@click.argument("results", type=click.Path(path_type=Path))
@click.argument("topic")
def prepare(submission: Path, work: Path, results: Path, topic: str):
    sys.exit(0 if prepare_submission(submission, work, results, topic) else 1)


@main.command("ensure-results", help="Write a failed results file at RESULTS unless a valid one is there.")
@click.argument("results", type=click.Path(path_type=Path))
def ensure_results_command(results: Path):
    ensure_results(results)


if __name__ == "__main__":
    main()
