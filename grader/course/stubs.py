"""Exercise stubs made from the reference solutions, the way nbgrader makes assignments.

In ``solutions/*.py`` each part a learner writes sits between two marker lines::

    # TODO(loss): soften both distributions with T, compare them with KL, mix in the hard-label loss.
    ### BEGIN SOLUTION
    ...reference code...
    ### END SOLUTION

The exercise file is the same file with each such region replaced by one line that raises
``NotImplementedError`` naming the topic, the function, the file and the hint command. The TODO
comment above the region stays in both trees. Malformed regions are loud errors.

``python -m grader.course.stubs`` rewrites ``exercises/`` from ``solutions/`` (maintainers only).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
ROOT = Path(__file__).resolve().parents[2]
SOLUTIONS, EXERCISES = ROOT / "solutions", ROOT / "exercises"


class StubError(Exception):
    """A solution file whose BEGIN/END SOLUTION markers are malformed."""


def stub_message(topic: str, where: str, filename: str) -> str:
    """The text of the NotImplementedError a stub raises."""
    return f"{topic}: write {where} in exercises/{filename} (stuck? learnkd hint {topic})"


def _enclosing_name(tree: ast.Module, lineno: int, filename: str = "") -> str:
    """``Class.method`` or ``function`` whose body holds line ``lineno`` (1-based)."""
    best, best_path = None, ""

    def visit(node: ast.AST, path: str) -> None:
        nonlocal best, best_path
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.ClassDef)) and child.lineno <= lineno <= child.end_lineno:
                name = f"{path}.{child.name}" if path else child.name
                if isinstance(child, ast.FunctionDef):
                    best, best_path = child, name
                visit(child, name)

    visit(tree, "")
    if best is None:
        raise StubError(f"{filename}:{lineno}: a solution region must sit inside a function")
    return best_path


def make_stub(source: str, topic: str, filename: str) -> str:
    """The exercise version of one solution file."""
    tree = ast.parse(source, filename)
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    begin_line = None
    for number, line in enumerate(lines, start=1):
        marker = line.strip()
        if marker == BEGIN:
            if begin_line is not None:
                raise StubError(f"{filename}:{number}: BEGIN SOLUTION inside the region opened at line {begin_line}")
            begin_line = number
            indent = line[: len(line) - len(line.lstrip())]
            message = stub_message(topic, _enclosing_name(tree, number, filename), filename)
            out.append(f'{indent}raise NotImplementedError("{message}")\n')
        elif marker == END:
            if begin_line is None:
                raise StubError(f"{filename}:{number}: END SOLUTION without a BEGIN SOLUTION")
            if number == begin_line + 1:
                raise StubError(f"{filename}:{begin_line}: an empty solution region")
            begin_line = None
        elif BEGIN.strip("# ") in line or END.strip("# ") in line:
            raise StubError(f"{filename}:{number}: a solution marker must be alone on its line, as '{BEGIN}'")
        elif begin_line is None:
            out.append(line)
    if begin_line is not None:
        raise StubError(f"{filename}:{begin_line}: BEGIN SOLUTION is never closed by '{END}'")
    return "".join(out)


def generated_note(filename: str) -> str:
    """The first line of an exercise file: where it comes from, and how it is made again."""
    return (f"# Generated from solutions/{filename} by `python -m grader.course.stubs` (course authors edit that "
            f"file, not this one).\n")


def exercise_file(source: str, topic: str, filename: str) -> str:
    """The exercise file of one topic's solution file: the note, then the stub."""
    return generated_note(filename) + make_stub(source, topic, filename)


def stub_files(solutions: Path = SOLUTIONS) -> dict[str, str]:
    """File name -> exercise text, for every .py file of ``solutions`` (topic files get stubs)."""
    from grader.course.topics import topic_for_file

    stubs = {}
    for path in sorted(solutions.glob("*.py")):
        source = path.read_text()
        topic = topic_for_file(path.name)
        if topic is None:
            if BEGIN in source:
                raise StubError(f"{path.name} has solution regions but no topic in grader/course/topics.toml")
            stubs[path.name] = source
        else:
            stubs[path.name] = exercise_file(source, topic, path.name)
    return stubs


def write_exercises(target: Path = EXERCISES) -> list[str]:
    """(Re)write ``target`` from ``solutions/``; returns the file names written."""
    target.mkdir(parents=True, exist_ok=True)
    stubs = stub_files()
    for name, text in stubs.items():
        (target / name).write_text(text)
    return sorted(stubs)


if __name__ == "__main__":
    written = write_exercises()
    print(f"wrote {len(written)} files to {EXERCISES}: {', '.join(written)}", file=sys.stderr)
