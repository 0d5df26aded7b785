"""The lab notebook: written from a template and the exercises, graded by taking its exercise cells back out.

The lab's prose and cells are ``lab.ipynb`` beside this file, which course authors edit in Jupyter. In it,
``{{epochs}}``-style placeholders stand for values of the course (``template_values``); a code cell that
holds only ``# learnkd: exercise NAME`` becomes the exercise cell of that definition; a markdown cell that
starts with ``<!-- learnkd: exercise note, TOPIC -->`` says what to write there, and learnkd adds how the
cell is graded.

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
    if not isinstance(data, dict) or not ("cells" in data or "worksheets" in data) or "nbformat" not in data:
        raise NotebookError(f"{path} is JSON but not a Jupyter notebook: it has no 'cells' and 'nbformat' "
                            f"entries at the top. Give the .ipynb file you work in. {fix}")
    version = data.get("nbformat")
    if version != NBFORMAT:
        data = upgraded(path, raw, version)
    if not isinstance(data.get("cells"), list) or not all(isinstance(c, dict) for c in data["cells"]):
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


def upgraded(path: Path, raw: bytes, version) -> dict:
    """A notebook of an older format version, as version 4 (``nbformat.reads`` converts it); NotebookError when
    nbformat cannot."""
    import nbformat

    try:
        return nbformat.reads(raw.decode("utf-8-sig"), as_version=NBFORMAT)
    except Exception as err:  # nbformat's errors for a version it cannot read or convert vary by release
        raise NotebookError(f"{path} is a notebook of format version {version!r}, which learnkd could not convert "
                            f"to version {NBFORMAT} ({type(err).__name__}: {str(err).strip()[:200]}). Open and save "
                            f"it in a recent Jupyter, or convert it with `jupyter nbconvert --to notebook "
                            f"--nbformat {NBFORMAT} --output NEW.ipynb {path.name}`, then check NEW.ipynb.") from None


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
        from grader.lab.submission import display_path

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


TEMPLATE = Path(__file__).with_name("lab.ipynb")  # the lab's prose and cells: course authors edit it in Jupyter
PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")  # {{epochs}}: a value learnkd fills in
EXERCISE_CELL = re.compile(r"^# learnkd: exercise (\w+)$")  # a code cell that becomes that exercise's stub
EXERCISE_NOTE = re.compile(r"^<!-- learnkd: exercise note, (\w+) -->\s*")  # the note above an exercise


def template_values() -> dict[str, str]:
    """What the template's ``{{name}}`` placeholders stand for."""
    plan = schedule()
    return {"notebook_name": DEFAULT_NAME, "limit_env": LIMIT_ENV, "install_spec": INSTALL_SPEC,
            "exercise_imports": "\n".join(exercise_imports()),
            **{key: str(plan[key]) for key in ("batch_size", "epochs", "lr", "T", "alpha")}}


def fill(text: str, values: dict[str, str], where: str) -> str:
    def value(match):
        if match.group(1) not in values:
            raise ValueError(f"{TEMPLATE.name}, {where}: {{{{{match.group(1)}}}}} names no value; the template may "
                             f"use {', '.join('{{%s}}' % k for k in sorted(values))}")
        return values[match.group(1)]
    return PLACEHOLDER.sub(value, text)


def notebook_cells(solutions: bool = False, template: Path = TEMPLATE) -> list[dict]:
    """The lab's cells from ``template``: placeholders filled in, each exercise cell the stub (or the reference)
    of the definition it names, each exercise note followed by how the cell below it is graded."""
    import nbformat

    parts = topic_parts(solutions)
    defs = {name: d for topic_name, (_, ds) in parts.items() for d in ds for name in d.names}
    topic_of = {name: topic_name for topic_name, (_, ds) in parts.items() for d in ds for name in d.names}
    values = template_values()
    cells, placed = [], []
    for number, cell in enumerate(nbformat.read(template, as_version=NBFORMAT).cells, start=1):
        source = cell.source.strip()
        exercise = EXERCISE_CELL.match(source) if cell.cell_type == "code" else None
        note = EXERCISE_NOTE.match(source) if cell.cell_type == "markdown" else None
        if exercise:
            name = exercise.group(1)
            if name not in defs:
                raise ValueError(f"{template.name}, cell {number}: '# learnkd: exercise {name}' names no definition "
                                 f"of the exercises; they define {', '.join(sorted(defs))}")
            placed.append(name)
            cells.append(_exercise(topic_of[name], defs[name]))
        elif note:
            cells.append(_exercise_note(note.group(1), fill(source[note.end():], values, f"cell {number}")))
        else:
            cells.append({"kind": cell.cell_type, "source": fill(source, values, f"cell {number}")})
    if sorted(placed) != sorted(defs):
        raise ValueError(f"{template.name} places {sorted(placed)} but the exercises define {sorted(defs)}: each "
                         f"definition needs one code cell '# learnkd: exercise NAME'")
    return cells


def build_notebook(solutions: bool = False) -> dict:
    """The lab as an nbformat v4 notebook; ``solutions`` fills in the exercise cells."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

    make = {"code": new_code_cell, "markdown": new_markdown_cell, "raw": new_raw_cell}
    cells, counts = [], {}
    for spec in notebook_cells(solutions):
        topic = spec.get("topic")
        key = topic or spec["kind"]
        counts[key] = counts.get(key, 0) + 1
        cell = make[spec["kind"]](spec["source"])
        cell["id"] = f"{key}-{counts[key]}"  # the same ids every time: a rebuilt notebook diffs cleanly
        if topic:
            cell["metadata"]["tags"] = [tag(topic)]
        cells.append(cell)
    return new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "learnkd": {"solutions": solutions, "tags": f"exercise cells are tagged {TAG_PREFIX}TOPIC"},
    })


def write_notebook(out: Path, solutions: bool = False) -> Path:
    """Write the lab to ``out`` (validated against the nbformat schema first)."""
    import nbformat

    notebook = build_notebook(solutions)
    nbformat.validate(notebook)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.learnkd-tmp")
    with open(partial, "w", encoding="utf-8") as f:
        nbformat.write(notebook, f)
    partial.replace(out)  # whole or not at all
    return out
