"""The lab notebook: written from the exercises, graded by taking its exercise cells back out.

An exercise cell is a code cell whose metadata tags hold ``learnkd:<topic>`` (``learnkd:loss``).
Each holds one top-level definition of the topic's file (``soft_targets``, ``distillation_loss``),
exactly as the stub in ``exercises/`` (or, with ``--solutions``, the reference) has it, so the
notebook and the exercises stay in sync by construction. The cells of one topic may sit in
different sections (``train_model`` before the loss, ``distill`` after it).

Grading a notebook writes a submission folder laid out like ``exercises/``: each topic file is
the exercise file's header (docstring and imports, ``from .loss import distillation_loss`` too)
followed by the topic's cells in notebook order. It is then graded as ``--path`` grades a folder,
and the file:line locations in the results are turned back into notebook cells.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from grader.course.stubs import BEGIN, END, SOLUTIONS, make_stub, stub_files
from grader.course.topics import ALL, schedule, topic_names, topics

TAG_PREFIX = "learnkd:"  # an exercise cell's tag is TAG_PREFIX + topic name
NBFORMAT = 4  # the notebook format version written and read (Jupyter's since 2015)
LIMIT_ENV = "LEARNKD_NOTEBOOK_LIMIT"  # number of MNIST images per split for a quick run; unset: all
DEFAULT_NAME = "learnkd-lab.ipynb"
# What the first cell installs when the notebook runs on Google Colab. A placeholder until the
# project has a public home: replace it with the repository's URL (README says where it lives).
INSTALL_SPEC = "learnkd @ git+https://github.com/learnkd/learnkd.git"


class NotebookError(Exception):
    """A notebook that cannot be read or graded; one paragraph saying how to fix it."""


def tag(topic: str) -> str:
    return TAG_PREFIX + topic


# ---------------------------------------------------------------------------------------------------
# Topic files as a header and definitions


@dataclass
class Definition:
    names: list[str]  # the top-level names it defines ("Teacher"; "distillation_loss")
    source: str  # its lines, with any comment lines just above it, no trailing blank lines


def split_module(source: str, filename: str) -> tuple[str, list[Definition]]:
    """The header (docstring, imports) of a module and each top-level def/class that follows it.

    Code between two definitions stays with the one above it; ``join_module`` puts them back.
    """
    lines = source.splitlines()
    tree = ast.parse(source, filename)
    starts = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            start = min([node.lineno] + [d.lineno for d in node.decorator_list])
            while start > 1 and lines[start - 2].lstrip().startswith("#"):
                start -= 1  # a comment just above a definition belongs to it
            starts.append((start, node.name))
    if not starts:
        raise ValueError(f"{filename} defines no function or class")
    header = "\n".join(lines[: starts[0][0] - 1]).rstrip()
    definitions = []
    for (start, name), (end, _) in zip(starts, starts[1:] + [(len(lines) + 1, "")]):
        definitions.append(Definition([name], "\n".join(lines[start - 1: end - 1]).rstrip()))
    return header, definitions


def join_module(header: str, sources: list[str]) -> tuple[str, list[int]]:
    """The module text of a header and cell sources, and the first line of each source in it."""
    text, firsts = header.rstrip() + "\n", []
    for source in sources:
        text += "\n\n"  # two blank lines between top-level definitions, as PEP 8 has them
        firsts.append(text.count("\n") + 1)
        text += source.rstrip() + "\n"
    return text, firsts


def without_markers(source: str) -> str:
    """A solution file with its BEGIN/END SOLUTION lines taken out: the answer, filled in."""
    return "".join(line for line in source.splitlines(keepends=True) if line.strip() not in (BEGIN, END))


def topic_parts(solutions: bool = False) -> dict[str, tuple[str, list[Definition]]]:
    """Topic name -> (header, definitions) of its exercise file, or of the reference."""
    parts = {}
    for t in topics():
        source = (SOLUTIONS / t.file).read_text()
        text = without_markers(source) if solutions else make_stub(source, t.name, t.file)
        parts[t.name] = split_module(text, t.file)
    return parts


def exercise_imports() -> list[str]:
    """The import lines the exercise files share (not their relative ones), merged and in order."""
    plain, from_names = [], {}
    for t in topics():
        header, _ = split_module(stub_files()[t.file], t.file)
        for node in ast.parse(header).body:
            if isinstance(node, ast.Import):
                line = ast.unparse(node)
                if line not in plain:
                    plain.append(line)
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = from_names.setdefault(node.module, [])
                names += [ast.unparse(a) for a in node.names if ast.unparse(a) not in names]
    return sorted(plain) + [f"from {module} import {', '.join(sorted(names))}" for module, names in from_names.items()]


# ---------------------------------------------------------------------------------------------------
# Reading a learner's notebook


@dataclass
class Cell:
    number: int  # 1-based among the cells of its kind: code cells are counted alone, as a learner counts them
    kind: str
    source: str
    tags: list[str]
    index: int = 0  # 1-based among every cell of the notebook, markdown ones too (the file's order)

    def defined_names(self) -> list[str]:
        """The top-level names this code cell defines (read off its lines when it does not parse)."""
        try:
            tree = ast.parse(self.source)
        except SyntaxError:
            return re.findall(r"^(?:async\s+def|def|class)\s+([A-Za-z_]\w*)", self.source, re.M)
        return [node.name for node in tree.body
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]

    def label(self) -> str:
        """``code cell 12 (distillation_loss, tagged learnkd:loss)``: the code cells counted alone (markdown
        cells have no number in Jupyter), with what the cell defines and its exercise tag."""
        about = self.defined_names() + [f"tagged {t}" for t in self.tags if t.startswith(TAG_PREFIX)]
        what = f"{self.kind} cell {self.number}"
        return f"{what} ({', '.join(about)})" if about else what


def _text(source) -> str:
    """A cell's source: a string, or a list of strings, as the notebook format allows."""
    if isinstance(source, list) and all(isinstance(s, str) for s in source):
        return "".join(source)
    return source if isinstance(source, str) else ""


def read_cells(path: Path) -> list[Cell]:
    """Every cell of the notebook at ``path``; NotebookError when it is not a notebook we can read."""
    fix = f"Make a fresh copy with `learnkd notebook --out NEW.ipynb` and copy your code into its exercise cells."
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise NotebookError(f"--notebook {path}: there is no such file. Give the path of your lab notebook "
                            f"(.ipynb); `learnkd notebook` writes one.") from None
    except OSError as err:
        raise NotebookError(f"--notebook {path}: it could not be read ({err.strerror or err}).") from None
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        where = f" (line {err.lineno}, column {err.colno}: {err.msg})" if isinstance(err, json.JSONDecodeError) else ""
        raise NotebookError(f"{path} is not a Jupyter notebook: a notebook is a JSON file, and this one is not "
                            f"valid JSON{where}. Was it saved from Jupyter as .ipynb (not exported as .py or "
                            f"HTML)? If it was cut short, open it in Jupyter to see what is left. {fix}") from None
    if not isinstance(data, dict) or "cells" not in data or "nbformat" not in data:
        raise NotebookError(f"{path} is JSON but not a Jupyter notebook: it has no 'cells' and 'nbformat' "
                            f"entries at the top. Give the .ipynb file you work in. {fix}")
    version = data.get("nbformat")
    if version != NBFORMAT:
        raise NotebookError(f"{path} is a notebook of format version {version!r}; learnkd reads version "
                            f"{NBFORMAT}, which Jupyter has written since 2015. Convert it with `jupyter "
                            f"nbconvert --to notebook --nbformat {NBFORMAT} --output NEW.ipynb {path.name}` "
                            f"(or open and save it in a recent Jupyter), then check NEW.ipynb.")
    if not isinstance(data["cells"], list) or not all(isinstance(c, dict) for c in data["cells"]):
        raise NotebookError(f"{path} is damaged: its 'cells' entry is not a list of cells. {fix}")
    cells, counts = [], {}
    for index, cell in enumerate(data["cells"], start=1):
        metadata = cell.get("metadata") if isinstance(cell.get("metadata"), dict) else {}
        tags = metadata.get("tags") if isinstance(metadata.get("tags"), list) else []
        kind = str(cell.get("cell_type"))
        counts[kind] = counts.get(kind, 0) + 1
        cells.append(Cell(counts[kind], kind, _text(cell.get("source")), [t for t in tags if isinstance(t, str)],
                          index))
    return cells


def exercise_cells(cells: list[Cell], path: Path) -> dict[str, list[Cell]]:
    """The exercise cells of each topic, in notebook order; NotebookError for a tag naming no topic."""
    names = topic_names()
    found: dict[str, list[Cell]] = {name: [] for name in names}
    for cell in cells:
        for t in cell.tags:
            if not t.startswith(TAG_PREFIX):
                continue
            topic = t.removeprefix(TAG_PREFIX)
            if topic not in found:
                raise NotebookError(f"{path.name} {cell.kind} cell {cell.number} has the tag '{t}', which names no topic: "
                                    f"the exercise tags are {', '.join(tag(n) for n in names)}. Fix the tag.")
            if cell.kind == "code":
                found[topic].append(cell)
    return found


def structure_problems(path: Path, topic: str, cells: list[Cell], expected: list[str],
                       untagged: list[Cell] = ()) -> list[str]:
    """Definitions missing from the topic's cells, or defined in two of them.

    ``untagged``: the notebook's other code cells, to point at one that holds a missing definition.
    """
    problems, where = [], {}
    for cell in cells:
        for name in cell.defined_names():
            where.setdefault(name, []).append(cell)
    for name in expected:
        if name in where:
            continue
        holder = next((c for c in untagged if name in c.defined_names()), None)
        if holder:
            problems.append(f"{holder.label()} defines {name} but has no tag '{tag(topic)}' (add the tag back: "
                            f"only tagged cells are graded)")
        else:
            problems.append(f"no code cell tagged '{tag(topic)}' defines {name} (was its cell deleted, turned "
                            f"into markdown, or its tag removed? The exercise cells must keep their tag and "
                            f"the names they define)")
    for name, holders in where.items():
        if len(holders) > 1:
            numbers = " and ".join(str(c.number) for c in holders)
            problems.append(f"code cells {numbers} are both tagged '{tag(topic)}' and both define {name} (a copied "
                            f"cell keeps its tag: keep your code in one of them and delete the other, or "
                            f"remove the tag from the copy)")
    return problems


def syntax_problem(path: Path, cell: Cell) -> str | None:
    try:
        ast.parse(cell.source, f"code cell {cell.number}")
    except SyntaxError as err:
        text = (err.text or "").strip()
        detail = f" in: {text}" if text else ""
        magic = ""
        if text.startswith(("%", "!")):
            magic = (" Lines starting with % or ! are notebook commands, not Python: move them to a cell "
                     "without an exercise tag.")
        return (f"{path.name} {cell.label()}, line {err.lineno}: SyntaxError: {err.msg}{detail}. The "
                f"exercise cells are graded as a Python file, so they must be valid Python.{magic}")
    return None


# ---------------------------------------------------------------------------------------------------
# The submission folder made from a notebook


@dataclass
class Block:
    """Where one cell sits in a written topic file."""
    cell: Cell
    first: int  # the file line of the cell's first line
    count: int  # its number of lines


@dataclass
class NotebookSubmission:
    """A notebook's exercise cells written as a folder laid out like exercises/."""
    notebook: Path
    folder: Path
    blocks: dict[str, list[Block]] = field(default_factory=dict)  # file name -> its cells

    def where(self, filename: str, line: int | None) -> str:
        """``learnkd-lab.ipynb code cell 12 (distillation_loss, tagged learnkd:loss), line 3`` for a line of a
        written file."""
        name, topic = self.notebook.name, next(t.name for t in topics() if t.file == filename)
        if line is not None:
            for block in self.blocks.get(filename, []):
                if block.first <= line < block.first + block.count:
                    return f"{name} {block.cell.label()}, line {line - block.first + 1}"
            if self.blocks.get(filename) and line < self.blocks[filename][0].first:
                return f"{name} (the imports that learnkd puts above the '{tag(topic)}' cells, line {line})"
        return f"{name} (the cells tagged '{tag(topic)}')"

    def locate(self, text: str) -> str:
        """``text`` with each location in the written files replaced by the notebook cell it came from."""
        if not text:
            return text
        from grader.grading.submission import display_path

        prefixes = {str(self.folder), str(self.folder.resolve()), display_path(self.folder)}
        files = "|".join(re.escape(t.file) for t in topics())
        pattern = re.compile(rf"(?:{'|'.join(re.escape(p) for p in sorted(prefixes, key=len, reverse=True))})"
                             rf"[/\\]({files})(?::(\d+))?")
        text = pattern.sub(lambda m: self.where(m.group(1), int(m.group(2)) if m.group(2) else None), text)
        # the stubs' own message, "write soft_targets in exercises/loss.py", names the cell that holds the stub
        stub = re.compile(rf"\bwrite (\w+) in exercises/({files})\b")
        return stub.sub(lambda m: f"write {m.group(1)} in {self.cell_of(m.group(2), m.group(1))}", text)

    def cell_of(self, filename: str, name: str) -> str:
        """``learnkd-lab.ipynb code cell 11 (soft_targets, tagged learnkd:loss)``: the cell defining ``name``."""
        cell = next((b.cell for b in self.blocks.get(filename, []) if name in b.cell.defined_names()), None)
        if cell is not None:
            return f"{self.notebook.name} {cell.label()}"
        topic = next(t.name for t in topics() if t.file == filename)
        return f"{self.notebook.name} (the cells tagged '{tag(topic)}')"

    def locate_results(self, results: list) -> list:
        """Check results with their messages and frames pointing at notebook cells."""
        for result in results:
            result.message = self.locate(result.message)
            result.frames = [self.locate(frame) for frame in result.frames]
            result.output = self.locate(result.output)
        return results


def graded_header(header: str) -> str:
    """An exercise file's header plus the imports the notebook gives every exercise cell.

    In the notebook the cells see torch, F, nn and Tensor from its imports cell, whichever file
    their topic's exercise imports them in; the graded file must see them too.
    """
    shared = [line for line in exercise_imports() if line not in header.splitlines()]
    return header.rstrip() + "\n" + "".join(f"{line}  # in the notebook's imports cell\n" for line in shared)


def write_submission(notebook: Path, folder: Path, graded: list[str]) -> NotebookSubmission:
    """Write the exercise cells of ``notebook`` into ``folder`` as files laid out like exercises/.

    Every topic's cells must be there, each definition once. The cells of the ``graded`` topics
    (every topic for ``all``) must also be valid Python; another topic's syntax error is left to
    the grading, which reports it as for a folder. NotebookError says what is wrong.
    """
    notebook = Path(notebook)
    every_cell = read_cells(notebook)
    cells = exercise_cells(every_cell, notebook)
    parts = topic_parts()
    strict = topic_names() if ALL in graded else graded
    for name in strict:
        for cell in cells[name]:
            problem = syntax_problem(notebook, cell)
            if problem:
                raise NotebookError(problem)
    untagged = [c for c in every_cell if c.kind == "code" and not any(t.startswith(TAG_PREFIX) for t in c.tags)]
    problems = []
    for t in topics():
        expected = [n for d in parts[t.name][1] for n in d.names]
        problems += structure_problems(notebook, t.name, cells[t.name], expected, untagged)
    if problems:
        if not any(cells.values()):
            problems = [f"it has no cell tagged {TAG_PREFIX}TOPIC at all (was it saved by a tool that drops cell "
                        f"tags, or is it not the learnkd lab? Copy your code into the exercise cells of a fresh "
                        f"`learnkd notebook`)"]
        raise NotebookError(f"{notebook} cannot be graded: " + "; ".join(problems) + ".")
    folder.mkdir(parents=True, exist_ok=True)
    submission = NotebookSubmission(notebook.resolve(), folder)
    for filename, text in stub_files().items():
        topic = next((t for t in topics() if t.file == filename), None)
        if topic is None:
            (folder / filename).write_text(text)  # __init__.py, as exercises/ has it
            continue
        sources = [cell.source for cell in cells[topic.name]]
        module, firsts = join_module(graded_header(parts[topic.name][0]), sources)
        (folder / filename).write_text(module)
        submission.blocks[filename] = [Block(cell, first, len(cell.source.rstrip().splitlines()) or 1)
                                       for cell, first in zip(cells[topic.name], firsts)]
    return submission


# ---------------------------------------------------------------------------------------------------
# Writing the notebook


def _md(text: str) -> dict:
    return {"kind": "markdown", "source": text.strip()}


def _code(text: str) -> dict:
    return {"kind": "code", "source": text.strip()}


def _exercise(topic: str, definition: Definition) -> dict:
    return {"kind": "code", "source": definition.source, "topic": topic}


def _exercise_note(topic: str, what: str) -> dict:
    return _md(f"**Exercise ({topic}).** {what} The code cell below is graded by "
               f"`learnkd check {topic} --notebook NOTEBOOK.ipynb`: keep its tag `{tag(topic)}` and the names "
               f"it defines. It is graded apart from the lab's other cells: it may use `torch`, `F`, `nn`, `Tensor` "
               f"and what the cells of its own topic define (`distill` may also call `distillation_loss`); any "
               f"other import it needs goes inside it. Stuck? `learnkd hint {topic}`.")


def notebook_cells(solutions: bool = False) -> list[dict]:
    """The lab, section by section: goals, data, models, teacher, loss, distillation, comparison, plots."""
    parts = topic_parts(solutions)
    defs = {name: d for topic_name, (_, ds) in parts.items() for d in ds for name in d.names}
    topic_of = {name: topic_name for topic_name, (_, ds) in parts.items() for d in ds for name in d.names}

    def exercise(name: str) -> dict:
        return _exercise(topic_of[name], defs[name])

    plan = schedule()
    batch_size, epochs, lr, T, alpha = (plan[k] for k in ("batch_size", "epochs", "lr", "T", "alpha"))
    imports = "\n".join(exercise_imports())
    placed = ["Teacher", "Student", "train_model", "evaluate", "soft_targets", "distillation_loss", "distill"]
    if sorted(placed) != sorted(defs):
        raise ValueError(f"the lab places {sorted(placed)} but the exercises define {sorted(defs)}: "
                         "update grader/notebook/build.py to place every exercise")
    return [
        _md(f"""
# Knowledge distillation on MNIST: a big teacher trains a tiny student

A large network trained on hard labels (this image is a 7) learns more than the labels: its outputs say
that this 7 looks a little like a 1 and nothing like a 0. Hinton, Vinyals and Dean (2015) showed that a
small network trained to match those softened outputs learns better than the same small network trained
on the labels alone. In this lab you build both networks, write the distillation loss, and measure the
difference on MNIST.

**How this notebook works.** The code cells that follow an **Exercise** note are yours to fill in: each
holds a stub whose body raises `NotImplementedError`; replace that line with your code (the docstring says
what the function must do, the `TODO` line where to start). Those cells carry a tag, `learnkd:TOPIC`
(`learnkd:models`, `learnkd:loss`, `learnkd:train`, `learnkd:evaluate`), that the grader uses to find
them; in Jupyter you can see the tags under View > Cell toolbar > Tags (Notebook 6) or in the property
inspector (JupyterLab). To grade a topic, save the notebook and run, in a terminal:

    learnkd check loss --notebook {DEFAULT_NAME}

The other cells are the lab itself: run them top to bottom. On a laptop CPU the whole run takes a few
minutes; set the environment variable `{LIMIT_ENV}=2000` before starting Jupyter for a quick pass on
2,000 images.
"""),
        _code(f"""
import sys

# On Google Colab, install learnkd first (it brings the MNIST helpers and the grader); elsewhere this does nothing.
if "google.colab" in sys.modules:
    %pip install --quiet "{INSTALL_SPEC}"
"""),
        _md("""
## 1. Goals

By the end of this lab you will have:

- built a Teacher CNN (about 400,000 parameters) and a Student CNN with at least 10x fewer;
- written `soft_targets` (softmax at a temperature T) and the distillation loss: a KL divergence between
  the softened outputs of teacher and student, mixed with the ordinary cross-entropy on the labels;
- trained the Teacher, distilled the Student from it, and trained the same Student on hard labels alone
  from the same starting weights, so that the targets are the only difference;
- compared the three models on accuracy, size and training time.
"""),
        _code(f"""
# What the exercise cells use: the same imports as the files in exercises/.
{imports}

# What the lab's own cells use.
import copy
import io
import os
import time

import matplotlib.pyplot as plt

from grader.lab.data import Batches, load_mnist

# {LIMIT_ENV}=N keeps the first N images of each split: a quick run. Unset: all of MNIST.
LIMIT = int(os.environ["{LIMIT_ENV}"]) if os.environ.get("{LIMIT_ENV}") else None
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
# The course's schedule, the one `learnkd check all` uses (grader/course/topics.toml).
BATCH_SIZE, EPOCHS, LR = {batch_size}, {epochs}, {lr}
T, ALPHA = {T}, {alpha}
print(f"device: {{DEVICE}}, images per split: {{LIMIT or 'all'}}")
"""),
        _md("""
## 2. The data

MNIST: 28x28 greyscale images of handwritten digits, 60,000 for training and 10,000 for testing.
`load_mnist` reads them from the folder named by the environment variable `LEARNKD_DATA` (or downloads
them to a cache folder) and returns them standardised (mean 0, standard deviation 1) as a float tensor of
shape (N, 1, 28, 28), with the labels as an int64 tensor of shape (N,). `Batches` serves them in
mini-batches from memory; each pass over it is one epoch, and a shuffled one draws a new order each epoch.
"""),
        _code("""
x_train, y_train = load_mnist("train", limit=LIMIT)  # (N, 1, 28, 28) float32, (N,) int64
x_test, y_test = load_mnist("test", limit=LIMIT)
print(f"train: {tuple(x_train.shape)}, test: {tuple(x_test.shape)}")


def train_batches(seed: int) -> Batches:
    \"\"\"The training set in shuffled mini-batches; the same seed gives the same order.\"\"\"
    return Batches(x_train, y_train, BATCH_SIZE, shuffle=True, seed=seed, device=DEVICE)


test_batches = Batches(x_test, y_test, batch_size=1000, device=DEVICE)

fig, axes = plt.subplots(2, 8, figsize=(10, 3))
for ax, image, label in zip(axes.flat, x_train[:16], y_train[:16]):
    ax.imshow(image[0], cmap="gray")
    ax.set_title(int(label))
    ax.axis("off")
plt.show()
"""),
        _md(f"""
## 3. The models

Both models map a batch of images (B, 1, 28, 28) to raw scores, the **logits**, of shape (B, 10): no
softmax at the end, since the losses apply it themselves (and at the temperature they need).

- The **Teacher** is big and accurate: it should reach 99% on the test set after {epochs} epochs.
- The **Student** is tiny: at most 25,000 parameters and at least 10x fewer than the Teacher. It is the
  model you would ship to a phone.

A recipe that works on MNIST: a few convolutions that halve the image (28 -> 14 -> 7) while adding
channels, then flatten and one or two `nn.Linear` layers. Avoid global average pooling right after the
convolutions: it throws away where the strokes are.
"""),
        _exercise_note("models", "Build the Teacher: its layers in `__init__`, the forward pass in `forward`."),
        exercise("Teacher"),
        _exercise_note("models", "Build the Student within its parameter budget."),
        exercise("Student"),
        _code("""
def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


torch.manual_seed(0)
teacher = Teacher().to(DEVICE)
torch.manual_seed(1)
student = Student().to(DEVICE)
hard_student = copy.deepcopy(student)  # the same starting weights: section 7 trains it on hard labels
print(f"Teacher: {parameter_count(teacher):,} parameters")
print(f"Student: {parameter_count(student):,} parameters "
      f"({parameter_count(teacher) / parameter_count(student):.0f}x fewer)")
print("logits of two images:", tuple(teacher(x_train[:2].to(DEVICE)).shape))
"""),
        _md("""
## 4. Training the teacher

The Teacher learns from the labels alone, with the cross-entropy loss and the Adam optimizer: for every
mini-batch, clear the old gradients, compute the loss, back-propagate, take a step. `train_model` returns
the mean loss of each epoch, for the plots of section 8. `evaluate` measures the fraction of test images
whose largest logit is the right class.
"""),
        _exercise_note("train", "Write the training loop on hard labels."),
        exercise("train_model"),
        _exercise_note("evaluate", "Write the accuracy of a model on a data set."),
        exercise("evaluate"),
        _code("""
start = time.perf_counter()
teacher_losses = train_model(teacher, train_batches(seed=0), epochs=EPOCHS, lr=LR)
teacher_seconds = time.perf_counter() - start
teacher_accuracy = evaluate(teacher, test_batches)
print(f"Teacher: test accuracy {teacher_accuracy:.2%} after {EPOCHS} epochs ({teacher_seconds:.0f} s)")
"""),
        _md(r"""
## 5. The distillation loss

The softmax at temperature $T$ turns logits $z$ into probabilities
$p_i = \exp(z_i / T) / \sum_j \exp(z_j / T)$. At $T = 1$ it is the ordinary softmax; a larger $T$
flattens it, so that the small probabilities of the wrong classes, how the Teacher ranks them, become
visible. Those are the **soft targets**.

The distillation loss mixes two terms with a weight $\alpha$:

$$\mathcal{L} = \alpha \, T^2 \, \mathrm{KL}\big(\mathrm{softmax}(t / T) \,\|\, \mathrm{softmax}(s / T)\big)
+ (1 - \alpha) \, \mathrm{CE}(s, y)$$

where $s$ and $t$ are the logits of student and teacher and $y$ the labels. The KL divergence
$\mathrm{KL}(p \| q) = \sum_i p_i (\log p_i - \log q_i)$ is summed over the classes and averaged over the
batch. The factor $T^2$ keeps the soft term's gradients, which shrink as $1/T^2$, on the scale of the
hard term's. The hard term is the plain cross-entropy, at $T = 1$.
"""),
        _exercise_note("loss", "Write the softmax at temperature T."),
        exercise("soft_targets"),
        _exercise_note("loss", "Write the distillation loss."),
        exercise("distillation_loss"),
        _code("""
teacher.eval()
with torch.no_grad():
    logits = teacher(x_test[:1].to(DEVICE)).cpu()  # (1, 10)

fig, axes = plt.subplots(1, 4, figsize=(12, 2.5), sharey=True)
for ax, temperature in zip(axes, [1.0, 2.0, 4.0, 8.0]):
    ax.bar(range(10), soft_targets(logits, T=temperature)[0].detach())
    ax.set_title(f"T = {temperature:g}")
    ax.set_xticks(range(10))
axes[0].set_ylabel("probability")
fig.suptitle(f"The Teacher's soft targets for a test image of a {int(y_test[0])}", y=1.05)
plt.show()

# Two checks you can reason out: equal logits give a soft term of 0, and alpha = 0 leaves the cross-entropy.
s, t, y = torch.randn(4, 10), torch.randn(4, 10), torch.randint(0, 10, (4,))
print(f"alpha=1, student = teacher: {distillation_loss(t, t, y, alpha=1.0).item():.4f} (expected 0)")
print(f"alpha=0: {distillation_loss(s, t, y, alpha=0.0).item():.4f}, "
      f"cross-entropy: {F.cross_entropy(s, y).item():.4f} (expected equal)")
"""),
        _md("""
## 6. Distilling the student

`distill` trains the Student on `distillation_loss`. The Teacher is only a source of targets: it stays in
eval mode, its logits are computed without gradients, and its weights never change. Only the Student's
parameters go to the optimizer.
"""),
        _exercise_note("train", "Write the distillation loop."),
        exercise("distill"),
        _code("""
start = time.perf_counter()
student_losses = distill(student, teacher, train_batches(seed=1), epochs=EPOCHS, T=T, alpha=ALPHA, lr=LR)
student_seconds = time.perf_counter() - start
student_accuracy = evaluate(student, test_batches)
print(f"distilled Student: test accuracy {student_accuracy:.2%} ({student_seconds:.0f} s, T={T}, alpha={ALPHA})")
"""),
        _md("""
## 7. Comparing with a student trained on hard labels

Does the Teacher help? Train `hard_student`, which starts from the very same weights as `student` and sees
the batches in the same order, on the labels alone, then compare. On MNIST the gap is small, a few tenths
of a percent at most, and it varies with the seed; on harder tasks it is larger. The Student's size is the
point: it keeps most of the Teacher's accuracy with a small fraction of its parameters.
"""),
        _code("""
start = time.perf_counter()
hard_losses = train_model(hard_student, train_batches(seed=1), epochs=EPOCHS, lr=LR)
hard_seconds = time.perf_counter() - start
hard_accuracy = evaluate(hard_student, test_batches)


def size_kb(model: nn.Module) -> float:
    \"\"\"Size of the saved weights (what a deployment would ship), in KB.\"\"\"
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.tell() / 1024


results = {
    "teacher": (teacher, teacher_accuracy, teacher_seconds),
    "student (distilled)": (student, student_accuracy, student_seconds),
    "student (hard labels)": (hard_student, hard_accuracy, hard_seconds),
}
print(f"{'model':<24}{'accuracy':>9}{'parameters':>12}{'size':>11}{'training':>10}")
for name, (model, accuracy, seconds) in results.items():
    print(f"{name:<24}{accuracy:>9.2%}{parameter_count(model):>12,}{size_kb(model):>8.1f} KB{seconds:>8.1f} s")
"""),
        _md("""
## 8. Plots

Left, the training loss of each epoch; the distillation loss is on another scale (its soft term is
multiplied by T squared), so it has an axis of its own. Right, the test accuracy of the three models.
"""),
        _code("""
fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4))
epochs = range(1, EPOCHS + 1)
left.plot(epochs, teacher_losses, "o-", label="teacher (cross-entropy)")
left.plot(epochs, hard_losses, "o-", label="student, hard labels (cross-entropy)")
left.set_xlabel("epoch")
left.set_ylabel("cross-entropy")
left.set_xticks(list(epochs))
soft_axis = left.twinx()
soft_axis.plot(epochs, student_losses, "s--", color="tab:green", label="student, distilled (distillation loss)")
soft_axis.set_ylabel("distillation loss")
left.legend(loc="upper right")
soft_axis.legend(loc="center right")
left.set_title("training loss per epoch")

names = list(results)
accuracies = [results[name][1] for name in names]
bars = right.bar(names, accuracies, color=["tab:blue", "tab:green", "tab:orange"])
for bar, name in zip(bars, names):
    top_middle = (bar.get_x() + bar.get_width() / 2, bar.get_height())
    right.annotate(f"{parameter_count(results[name][0]):,} params", top_middle, ha="center", va="bottom")
right.set_ylim(min(accuracies) - 0.05, 1.0)
right.set_ylabel("test accuracy")
right.set_title("test accuracy")
plt.tight_layout()
plt.show()
"""),
        _md(f"""
## 9. Wrap-up

- A trained model's outputs carry more than its predictions: the softened probabilities of the wrong
  classes tell a student which digits look alike. That is what distillation passes on.
- The loss is a KL divergence between softened distributions, averaged over the batch and scaled by
  $T^2$, mixed with the cross-entropy on the labels.
- The Student keeps most of the Teacher's accuracy at a small fraction of its size; the same recipe
  compresses language models (DistilBERT, TinyBERT) and vision models.

Things to try: distil at T = 1, 4 and 8; set alpha to 0 (the hard-label student again) and to 1 (soft
targets only); shrink the Student further; train on a few thousand images only, where the Teacher's soft
targets help most.

To grade your cells, save the notebook and run in a terminal `learnkd check TOPIC --notebook {DEFAULT_NAME}`
for each of models, loss, train and evaluate, then `learnkd check all --notebook {DEFAULT_NAME}` for the
end-to-end run on all of MNIST. On Colab, download the notebook first (File > Download > .ipynb).
"""),
    ]


def build_notebook(solutions: bool = False) -> dict:
    """The lab as an nbformat v4 notebook (a plain dict); ``solutions`` fills in the exercise cells."""
    cells, counts = [], {}
    for spec in notebook_cells(solutions):
        topic = spec.get("topic")
        key = topic or spec["kind"]
        counts[key] = counts.get(key, 0) + 1
        cell = {"cell_type": spec["kind"], "id": f"{key}-{counts[key]}", "metadata": {},
                "source": spec["source"]}
        if topic:
            cell["metadata"]["tags"] = [tag(topic)]
        if spec["kind"] == "code":
            cell.update(execution_count=None, outputs=[])
        cells.append(cell)
    return {
        "cells": cells,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
            "learnkd": {"solutions": solutions, "tags": f"exercise cells are tagged {TAG_PREFIX}TOPIC"},
        },
        "nbformat": NBFORMAT,
        "nbformat_minor": 5,
    }


def write_notebook(out: Path, solutions: bool = False) -> Path:
    """Write the lab to ``out`` (validated against the nbformat schema first)."""
    import nbformat

    notebook = nbformat.from_dict(build_notebook(solutions))
    nbformat.validate(notebook)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        nbformat.write(notebook, f)
    return out
