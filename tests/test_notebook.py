"""The lab notebook: `learnkd notebook` writes it, `learnkd check TOPIC --notebook` grades its cells."""

from __future__ import annotations

import ast
import json
import re
import shutil
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner

from grader.cli import cli
import in_process
from grader.notebook.build import (LIMIT_ENV, TAG_PREFIX, join_module, split_module, topic_parts, without_markers,
                                   write_submission)
from grader.course.stubs import SOLUTIONS, stub_files
from grader.course.topics import get_topic, topics

TESTS = Path(__file__).resolve().parent
EXIT_FAILED, EXIT_USAGE = 1, 2
# Images per split for the notebook run in a real kernel: enough for every cell to run, few enough
# that three trainings take seconds.
KERNEL_RUN_LIMIT = 500

# A learner's loss.py with the KL averaged over the classes too (reduction="mean" instead of "batchmean").
MEAN_NOT_BATCHMEAN = '''
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor,
                      T: float = 2.0, alpha: float = 0.7) -> Tensor:
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1),
                    reduction="mean") * T**2
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1 - alpha) * hard
'''

# A learner's loss.py that raises: labels of shape (B,) have no dimension 1 to squeeze.
RAISES_ON_LABELS = '''
import torch.nn.functional as F
from torch import Tensor


def soft_targets(logits: Tensor, T: float = 1.0) -> Tensor:
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor,
                      T: float = 2.0, alpha: float = 0.7) -> Tensor:
    soft = F.kl_div(F.log_softmax(student_logits / T, dim=1), F.softmax(teacher_logits / T, dim=1),
                    reduction="batchmean") * T**2
    labels = labels.squeeze(1)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1 - alpha) * hard
'''


# ---------------------------------------------------------------------------------------------------
# helpers


def make_notebook(folder: Path, solutions: bool = False, name: str | None = None) -> Path:
    args = ["notebook", "--out", str(folder / (name or ("sol.ipynb" if solutions else "lab.ipynb")))]
    result = CliRunner().invoke(cli, args + (["--solutions"] if solutions else []))
    assert result.exit_code == 0, result.output
    return Path(args[2])


def tagged(nb: dict, topic: str) -> list[dict]:
    return [c for c in nb["cells"] if TAG_PREFIX + topic in c.get("metadata", {}).get("tags", [])]


def source(cell: dict) -> str:
    return cell["source"] if isinstance(cell["source"], str) else "".join(cell["source"])


def put_file(notebook: Path, topic: str, text: str) -> Path:
    """Put a learner's .py file of ``topic`` into the notebook: each definition into the cell defining it."""
    nb = json.loads(notebook.read_text())
    filename = get_topic(topic).file
    header, definitions = split_module(text, filename)
    stub_header, _ = split_module(stub_files()[filename], filename)
    cells = {re.findall(r"^(?:def|class) (\w+)", source(c), re.M)[0]: c for c in tagged(nb, topic)}
    # What the learner added to the file's header (imports, a module-level KLDivLoss()) goes into the
    # first cell; a helper they added goes with the exercise above it (or the first one), as they would
    # paste it.
    statements = [node for node in ast.parse(header).body
                  if not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))]  # the docstring
    extra = [ast.get_source_segment(header, node) for node in statements]
    extra = [segment for segment in extra if segment not in stub_header.splitlines()]
    parts = {name: [] for name in cells}
    current = next(iter(cells))
    for definition in definitions:
        current = next((n for n in definition.names if n in cells), current)
        parts[current].append(definition.source)
    for number, (name, cell) in enumerate(cells.items()):
        cell["source"] = "\n\n\n".join((["\n".join(extra)] if extra and number == 0 else []) + parts[name])
    notebook.write_text(json.dumps(nb))
    return notebook


def code_cell(notebook: Path, number: int) -> dict:
    """The notebook's code cell ``number``, counting code cells only (1-based)."""
    return [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"][number - 1]


def edit(notebook: Path, change) -> Path:
    nb = json.loads(notebook.read_text())
    change(nb)
    notebook.write_text(json.dumps(nb))
    return notebook


SHARED: dict = {}  # the module's shared_judges (tests/conftest.py)


@pytest.fixture(scope="module", autouse=True)
def share_judges(shared_judges):
    SHARED["obj"] = shared_judges
    yield
    SHARED.clear()


def check(*args: str, data: Path | None = None):
    """`learnkd check ARGS` in this process, its judges forked from the module's fork server."""
    return CliRunner().invoke(cli, ["check", *args] + (["--data-dir", str(data)] if data else []), obj=SHARED["obj"]())


def folder_with(tmp: Path, topic: str, text: str) -> Path:
    folder = tmp / "exercises"
    shutil.copytree(SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / get_topic(topic).file).write_text(text)
    return folder


LOCATION = re.compile(r"\S*\.py:\d+|\S+\.ipynb code cell \d+ \([^)]*\), line \d+")


def without_locations(report: dict) -> list[tuple]:
    """The checks of a Gradescope report, with every file:line or cell location blanked out."""
    assert not any(t["name"].endswith("the checks ran to the end") for t in report["tests"]), report["tests"]
    return [(t["name"], t["status"], t["score"], LOCATION.sub("<at>", t["output"])) for t in report["tests"]]


# ---------------------------------------------------------------------------------------------------
# the notebook written


def test_the_notebook_is_valid_and_its_exercise_cells_are_the_stubs(tmp_path):
    nb_path = make_notebook(tmp_path)
    nb = nbformat.read(nb_path, as_version=4)
    nbformat.validate(nb)
    assert nb.nbformat == 4
    raw = json.loads(nb_path.read_text())
    for t in topics():
        cells = tagged(raw, t.name)
        assert cells and all(c["cell_type"] == "code" for c in cells)
        header, _ = split_module(stub_files()[t.file], t.file)
        text, _ = join_module(header, [source(c) for c in cells])
        assert text == stub_files()[t.file], f"the {t.name} cells differ from exercises/{t.file}"


def test_the_solutions_notebook_holds_the_reference_without_markers(tmp_path):
    raw = json.loads(make_notebook(tmp_path, solutions=True).read_text())
    nbformat.validate(nbformat.from_dict(raw))
    for t in topics():
        header, _ = topic_parts(solutions=True)[t.name]
        text, _ = join_module(header, [source(c) for c in tagged(raw, t.name)])
        assert text == without_markers((SOLUTIONS / t.file).read_text())
        assert "NotImplementedError" not in text and "BEGIN SOLUTION" not in text


def test_the_notebook_has_the_lab_sections_and_a_colab_install_cell(tmp_path):
    raw = json.loads(make_notebook(tmp_path).read_text())
    headings = [source(c).splitlines()[0] for c in raw["cells"] if c["cell_type"] == "markdown"
                and source(c).startswith("#")]
    assert [h.split(". ", 1)[-1] for h in headings[1:]] == [
        "Goals", "The data", "The models", "Training the teacher", "The distillation loss",
        "Distilling the student", "Comparing with a student trained on hard labels", "Plots", "Wrap-up"]
    first_code = next(source(c) for c in raw["cells"] if c["cell_type"] == "code")
    assert 'if "google.colab" in sys.modules:' in first_code and "%pip install" in first_code
    code = "\n".join(source(c) for c in raw["cells"] if c["cell_type"] == "code")
    assert LIMIT_ENV in code


def test_notebook_refuses_to_overwrite_without_force(tmp_path):
    nb_path = make_notebook(tmp_path)
    nb_path.write_text("my work")
    result = CliRunner().invoke(cli, ["notebook", "--out", str(nb_path)])
    assert result.exit_code == EXIT_USAGE and "--force" in result.output
    assert nb_path.read_text() == "my work"
    result = CliRunner().invoke(cli, ["notebook", "--out", str(nb_path), "--force"])
    assert result.exit_code == 0 and json.loads(nb_path.read_text())["nbformat"] == 4


# ---------------------------------------------------------------------------------------------------
# grading a notebook


@pytest.mark.slow
def test_untouched_notebook_is_not_started_and_solutions_notebook_is_done(tmp_path):
    result = check("loss", "--notebook", str(make_notebook(tmp_path)))
    assert result.exit_code == EXIT_FAILED, result.output
    assert "not started" in result.output and "lab.ipynb" in result.output
    assert "exercises/loss.py" not in result.output
    # the stub's message names the cell that holds it, counting code cells only (as Jupyter shows them)
    found = re.search(r"not started: write soft_targets in lab\.ipynb code cell (\d+) \(soft_targets, tagged "
                      r"learnkd:loss\)", result.output)
    assert found, result.output
    assert "def soft_targets(" in source(code_cell(tmp_path / "lab.ipynb", int(found.group(1))))
    result = check("loss", "--notebook", str(make_notebook(tmp_path, solutions=True)))
    assert result.exit_code == 0, result.output
    assert re.search(r"^loss\s+✓", result.output, re.M), result.output


@pytest.mark.slow
def test_the_progress_line_of_a_notebook_is_the_notebooks_own(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.copytree(SOLUTIONS, tmp_path / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    files_progress = tmp_path / ".learnkd" / "progress.json"
    files_progress.parent.mkdir()
    files_progress.write_text(json.dumps({"version": 1, "hints": {}, "topics": {
        name: {"status": "done", "passed": 1, "total": 1} for name in ("models", "loss", "train", "evaluate")}}))
    before = files_progress.read_text()
    nb_path = make_notebook(tmp_path)  # stubs: nothing done in the notebook
    result = check("loss", "--notebook", str(nb_path))
    assert "progress of lab.ipynb  models ·  loss ·  train ·  evaluate ·" in result.output, result.output
    assert files_progress.read_text() == before  # the files' progress is left alone
    result = check("--notebook", str(nb_path))  # the next topic not done is the notebook's
    assert "grading the next topic not done: models" in result.output, result.output


@pytest.mark.slow
@pytest.mark.parametrize("text", [MEAN_NOT_BATCHMEAN, RAISES_ON_LABELS], ids=["mean-not-batchmean", "raises"])
def test_a_notebook_grades_as_the_same_code_in_a_folder(text, tmp_path):
    nb_path = put_file(make_notebook(tmp_path, solutions=True), "loss", text)
    from_notebook = check("loss", "--notebook", str(nb_path), "--json", str(tmp_path / "nb.json"))
    from_folder = check("loss", "--path", str(folder_with(tmp_path, "loss", text)), "--json", str(tmp_path / "py.json"))
    assert from_notebook.exit_code == from_folder.exit_code == EXIT_FAILED, from_notebook.output
    nb_report, py_report = (json.loads((tmp_path / n).read_text()) for n in ("nb.json", "py.json"))
    assert nb_report["score"] == py_report["score"] < py_report["max_score"]
    assert without_locations(nb_report) == without_locations(py_report)
    assert ".py:" not in from_notebook.output


@pytest.mark.slow
def test_a_traceback_points_at_the_cell_and_its_line(tmp_path):
    nb_path = put_file(make_notebook(tmp_path, solutions=True), "loss", RAISES_ON_LABELS)
    result = check("loss", "--notebook", str(nb_path), "-v")
    assert result.exit_code == EXIT_FAILED
    found = re.search(r"at sol\.ipynb code cell (\d+) \(distillation_loss, tagged learnkd:loss\), line (\d+) in "
                      r"distillation_loss: (.+)", result.output)
    assert found, result.output
    cell = code_cell(nb_path, int(found.group(1)))
    line = source(cell).splitlines()[int(found.group(2)) - 1]
    assert line.strip() == found.group(3).strip() == "labels = labels.squeeze(1)"


# A few of the banks' loss files (tests/mistakes, tests/correct), when they are there: written by
# others as learners write them, so they try the notebook on code this file did not invent.
BANK = (sorted((TESTS / "mistakes" / "loss").glob("*.py"))[:2] + sorted((TESTS / "correct" / "loss").glob("*.py"))[:1])


@pytest.mark.slow
@pytest.mark.parametrize("path", BANK, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_files_of_the_banks_grade_the_same_in_a_notebook(path, tmp_path, mnist_dir):
    """The notebook's cells written out as `check --notebook` writes them, and the file in a folder, each graded by
    the judge's checks in this process (tests/in_process.py; the two tests above grade through the command)."""
    nb_path = put_file(make_notebook(tmp_path, solutions=True), "loss", path.read_text())
    lab = write_submission(nb_path, tmp_path / "from-notebook" / "exercises", ["loss"])
    from_notebook = lab.locate_results(in_process.grade(lab.folder, "loss", str(mnist_dir)).results)
    from_folder = in_process.grade(folder_with(tmp_path, "loss", path.read_text()), "loss", str(mnist_dir)).results

    def verdicts(results):
        return [(c.name, c.status, LOCATION.sub("<at>", c.detail())) for c in results]

    assert verdicts(from_notebook) == verdicts(from_folder)
    assert not any(".py:" in c.detail() for c in from_notebook), "every location is a notebook cell"


@pytest.mark.slow
def test_exercise_cells_see_the_imports_of_the_notebook(tmp_path):
    # loss.py imports neither torch nor nn, but in the notebook every exercise cell sees them.
    def use_torch(nb):
        cell = tagged(nb, "loss")[0]
        cell["source"] = source(cell).replace("return F.softmax(logits / T, dim=-1)",
                                              "return torch.softmax(logits / T, dim=-1) * nn.Identity()(1.0)")

    nb_path = edit(make_notebook(tmp_path, solutions=True), use_torch)
    assert "torch.softmax" in source(tagged(json.loads(nb_path.read_text()), "loss")[0])
    result = check("loss", "--notebook", str(nb_path))
    assert result.exit_code == 0, result.output


@pytest.mark.slow
def test_a_syntax_error_in_another_topic_does_not_stop_grading(tmp_path):
    def break_evaluate(nb):
        [cell] = tagged(nb, "evaluate")
        cell["source"] = source(cell).replace("model.eval()", "model.eval(")

    nb_path = edit(make_notebook(tmp_path, solutions=True), break_evaluate)
    assert check("loss", "--notebook", str(nb_path)).exit_code == 0
    result = check("evaluate", "--notebook", str(nb_path))
    assert result.exit_code == EXIT_USAGE
    assert re.search(r"code cell \d+ \(evaluate, tagged learnkd:evaluate\), line \d+: SyntaxError", result.output), \
        result.output


# ---------------------------------------------------------------------------------------------------
# notebooks that cannot be graded: one paragraph, exit code 2


def _drop_tag(nb):
    tagged(nb, "loss")[1]["metadata"]["tags"] = []


def _delete_cell(nb):
    nb["cells"].remove(tagged(nb, "loss")[1])


def _drop_every_tag(nb):
    for cell in nb["cells"]:
        cell["metadata"].pop("tags", None)


def _copy_cell(nb):
    cell = tagged(nb, "loss")[1]
    nb["cells"].insert(nb["cells"].index(cell) + 1, dict(cell, id="copy"))


def _syntax_error(nb):
    cell = tagged(nb, "loss")[1]
    cell["source"] = source(cell).replace("hard = F.cross_entropy", "hard = = F.cross_entropy")


def _magic(nb):
    cell = tagged(nb, "loss")[0]
    cell["source"] = "%%time\n" + source(cell)


def _unknown_tag(nb):
    tagged(nb, "loss")[0]["metadata"]["tags"] = ["learnkd:losses"]


@pytest.mark.parametrize("change, says", [
    (lambda p: p.write_text('{"cells": [, }'), "not valid JSON (line 1"),
    (lambda p: p.write_text("[1, 2, 3]"), "is JSON but not a Jupyter notebook"),
    (lambda p: edit(p, lambda nb: nb.update(nbformat=99)), "format version 99, which learnkd could not convert"),
    (lambda p: edit(p, _drop_tag), "(distillation_loss) defines distillation_loss but has no tag 'learnkd:loss'"),
    (lambda p: edit(p, _delete_cell), "no code cell tagged 'learnkd:loss' defines distillation_loss"),
    (lambda p: edit(p, _drop_every_tag), "it has no cell tagged learnkd:TOPIC at all"),
    (lambda p: edit(p, _copy_cell), "are both tagged 'learnkd:loss' and both define distillation_loss"),
    (lambda p: edit(p, _syntax_error), "SyntaxError: invalid syntax in: hard = = F.cross_entropy"),
    (lambda p: edit(p, _magic), "Lines starting with % or ! are notebook commands"),
    (lambda p: edit(p, _unknown_tag), "has the tag 'learnkd:losses', which names no topic"),
    (lambda p: p.unlink(), "there is no such file"),
    (lambda p: p.write_text('{"nbformat": 4, "nbformat_minor": 5, "worksheets": []}'), "is damaged"),
], ids=["not-json", "not-a-notebook", "nbformat-99", "untagged", "deleted", "no-tags", "duplicated", "syntax",
        "magic", "unknown-tag", "no-file", "v4-without-cells"])
def test_a_bad_notebook_is_a_one_paragraph_usage_error(change, says, tmp_path):
    nb_path = make_notebook(tmp_path, solutions=True)
    change(nb_path)
    result = check("loss", "--notebook", str(nb_path))
    assert result.exit_code == EXIT_USAGE, result.output
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    assert says in " ".join(result.output.split()), result.output


@pytest.mark.slow
def test_a_notebook_of_format_version_3_is_upgraded_and_graded(tmp_path):
    # Jupyter before 2015 wrote version 3 (cells inside worksheets); nbformat.read converts it
    nb_path = make_notebook(tmp_path, solutions=True)
    old = nbformat.convert(nbformat.read(nb_path, as_version=4), 3)
    assert old.nbformat == 3 and "worksheets" in old
    nb_path.write_text(nbformat.writes(old, version=3))
    result = check("loss", "--notebook", str(nb_path))
    assert result.exit_code == 0, result.output
    assert "11/11" in result.output or "✓" in result.output


def test_the_template_places_every_exercise_once_and_fills_every_placeholder():
    from grader.notebook.build import PLACEHOLDER, TEMPLATE, notebook_cells

    cells = notebook_cells()
    assert not any(PLACEHOLDER.search(c["source"]) for c in cells), "a {{placeholder}} was left in the notebook"
    placed = [c["source"].split("(")[0].split()[-1] for c in cells if c.get("topic")]
    assert len(placed) == 7
    raw = nbformat.read(TEMPLATE, as_version=4)
    assert all("id" in cell for cell in raw.cells), "the template's cells have ids (nbformat 4.5)"


def test_a_template_that_names_an_unknown_exercise_is_a_clear_error(tmp_path):
    from nbformat.v4 import new_code_cell, new_notebook

    from grader.notebook.build import notebook_cells

    template = tmp_path / "lab.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell("# learnkd: exercise Teacherr")]), template)
    with pytest.raises(ValueError, match="'# learnkd: exercise Teacherr' names no definition"):
        notebook_cells(template=template)
    nbformat.write(new_notebook(cells=[new_code_cell("print({{epoch}})")]), template)
    with pytest.raises(ValueError, match=r"\{\{epoch\}\} names no value"):
        notebook_cells(template=template)


def test_a_syntax_error_names_its_cell_and_line(tmp_path):
    nb_path = edit(make_notebook(tmp_path, solutions=True), _syntax_error)
    result = check("loss", "--notebook", str(nb_path))
    found = re.search(r"sol\.ipynb code cell (\d+) \(distillation_loss, tagged learnkd:loss\), line (\d+): "
                      r"SyntaxError", result.output)
    assert result.exit_code == EXIT_USAGE and found, result.output
    cell = code_cell(nb_path, int(found.group(1)))
    assert "hard = = F.cross_entropy" in source(cell).splitlines()[int(found.group(2)) - 1]


def test_notebook_and_path_together_are_a_usage_error(tmp_path):
    result = check("loss", "--notebook", str(make_notebook(tmp_path)), "--path", str(tmp_path))
    assert result.exit_code == EXIT_USAGE and "give one of them" in result.output


# ---------------------------------------------------------------------------------------------------
# the notebook in a real Jupyter kernel


@pytest.mark.slow
def test_the_solutions_notebook_runs_top_to_bottom_in_a_kernel(tmp_path, mnist_dir, monkeypatch):
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv(LIMIT_ENV, str(KERNEL_RUN_LIMIT))
    monkeypatch.setenv("LEARNKD_DATA", str(mnist_dir))
    nb = nbformat.read(make_notebook(tmp_path, solutions=True), as_version=4)
    nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on an error
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    assert code_cells[0].outputs == []  # the Colab install is a no-op here
    text = "\n".join(o.get("text", "") for c in code_cells for o in c.outputs if o.output_type == "stream")
    assert f"train: ({KERNEL_RUN_LIMIT}, 1, 28, 28)" in text
    rows = re.findall(r"^(teacher|student \(distilled\)|student \(hard labels\))\s+(\d+\.\d+)%", text, re.M)
    assert [name for name, _ in rows] == ["teacher", "student (distilled)", "student (hard labels)"]
    assert all(10.0 < float(accuracy) <= 100.0 for _, accuracy in rows)  # better than chance: they learned
    images = [o for c in code_cells for o in c.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 3
