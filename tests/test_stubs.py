"""exercises/ is solutions/ with each solution region replaced by a stub (grader.course.stubs), and stays so."""

from __future__ import annotations

import ast
import importlib
import inspect
import textwrap

import pytest

from grader.course.stubs import EXERCISES, SOLUTIONS, StubError, make_stub, stub_files, stub_message
from grader.course.topics import topic_for_file, topics

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"
TOPIC_FILES = [t.file for t in topics()]


def test_exercises_are_exactly_what_the_generator_makes():
    stubs = stub_files()
    on_disk = {p.name: p.read_text() for p in sorted(EXERCISES.glob("*.py"))}
    assert sorted(stubs) == sorted(on_disk), "exercises/ and solutions/ hold different .py files"
    stale = [name for name in stubs if stubs[name] != on_disk[name]]
    assert not stale, f"exercises/ is out of date for {stale}: run `python -m grader.course.stubs`"


def test_every_topic_file_exists_in_both_trees():
    for name in TOPIC_FILES:
        assert (SOLUTIONS / name).is_file() and (EXERCISES / name).is_file(), name


class StripBodies(ast.NodeTransformer):
    """Keep each function's signature and docstring; drop the code a learner writes."""

    def visit_FunctionDef(self, node):
        self.generic_visit(node)
        doc = ast.get_docstring(node, clean=False)
        node.body = [ast.Expr(ast.Constant(doc))] if doc is not None else [ast.Pass()]
        return node


def interface(path) -> str:
    return ast.dump(StripBodies().visit(ast.parse(path.read_text())), include_attributes=False)


@pytest.mark.parametrize("name", sorted(p.name for p in SOLUTIONS.glob("*.py")))
def test_same_signatures_and_docstrings(name):
    assert interface(SOLUTIONS / name) == interface(EXERCISES / name), (
        f"{name}: exercises/ and solutions/ differ outside the solution regions (signatures, docstrings, "
        "imports or module-level code)")


def stub_functions():
    """(file, qualified name) of every function whose solution has a region to fill in."""
    found = []
    for name in TOPIC_FILES:
        source = (SOLUTIONS / name).read_text()
        marker_lines = [n for n, line in enumerate(source.splitlines(), 1) if line.strip() == BEGIN]
        tree = ast.parse(source)
        for node in tree.body:
            methods = [(f"{node.name}.{m.name}", m) for m in node.body if isinstance(m, ast.FunctionDef)] \
                if isinstance(node, ast.ClassDef) else [(node.name, node)] if isinstance(node, ast.FunctionDef) else []
            for qualname, fn in methods:
                if any(fn.lineno <= n <= fn.end_lineno for n in marker_lines):
                    found.append((name, qualname))
    return found


STUBS = stub_functions()


def test_the_contract_functions_are_all_stubs():
    names = {q for _, q in STUBS}
    assert {"Teacher.__init__", "Teacher.forward", "Student.__init__", "Student.forward", "soft_targets",
            "distillation_loss", "train_model", "distill", "evaluate"} <= names


def call_stub(module, qualname: str):
    """Call one stub with placeholder arguments (the stub raises before using them)."""
    if "." in qualname:
        cls_name, method = qualname.split(".")
        cls = getattr(module, cls_name)
        fn = getattr(cls, method)
        self = cls.__new__(cls)
        if method != "__init__":
            # the stubbed __init__ would raise; give the instance the bare nn.Module state instead
            super(cls, self).__init__()
        args = [self]
    else:
        fn, args = getattr(module, qualname), []
    required = [p for p in inspect.signature(fn).parameters.values()
                if p.default is inspect.Parameter.empty and p.kind is p.POSITIONAL_OR_KEYWORD]
    args += [None] * (len(required) - len(args))
    fn(*args)


@pytest.mark.parametrize("filename, qualname", STUBS, ids=[f"{f}::{q}" for f, q in STUBS])
def test_every_stub_raises_not_implemented_naming_topic_file_and_hint(filename, qualname):
    module = importlib.import_module(f"exercises.{filename.removesuffix('.py')}")
    topic = topic_for_file(filename)
    with pytest.raises(NotImplementedError) as info:
        call_stub(module, qualname)
    message = str(info.value)
    assert message.startswith(f"{topic}:"), message
    assert f"exercises/{filename}" in message and f"learnkd hint {topic}" in message
    assert qualname in message  # names the function (Teacher.__init__, distill, ...)


def test_every_todo_comment_names_its_topic():
    for name in TOPIC_FILES:
        topic = topic_for_file(name)
        for line in (EXERCISES / name).read_text().splitlines():
            if "TODO" in line:
                assert f"TODO({topic})" in line, f"{name}: {line.strip()}"


def test_exercises_hold_no_solution_markers():
    for path in EXERCISES.glob("*.py"):
        assert "BEGIN SOLUTION" not in path.read_text() and "END SOLUTION" not in path.read_text(), path.name


# ---------------------------------------------------------------------------------------------------
# make_stub on small sources


GOOD = textwrap.dedent('''\
    def f(x):
        """Double x."""
        # TODO(demo): double it.
        ### BEGIN SOLUTION
        y = 2 * x
        return y
        ### END SOLUTION


    class A:
        def g(self):
            ### BEGIN SOLUTION
            return 1
            ### END SOLUTION
    ''')


def test_make_stub_replaces_each_region_with_one_raise():
    stub = make_stub(GOOD, "demo", "demo.py")
    assert stub == textwrap.dedent(f'''\
        def f(x):
            """Double x."""
            # TODO(demo): double it.
            raise NotImplementedError("{stub_message('demo', 'f', 'demo.py')}")


        class A:
            def g(self):
                raise NotImplementedError("{stub_message('demo', 'A.g', 'demo.py')}")
        ''')
    assert stub_message("demo", "A.g", "demo.py") == "demo: write A.g in exercises/demo.py (stuck? learnkd hint demo)"
    ast.parse(stub)


def test_make_stub_keeps_a_file_without_regions():
    assert make_stub("x = 1\n", "demo", "demo.py") == "x = 1\n"


def region(body: str) -> str:
    return "def f():\n" + textwrap.indent(textwrap.dedent(body), "    ")


MALFORMED = {
    "unclosed": (region(f"{BEGIN}\nreturn 1\n"), "never closed"),
    "nested": (region(f"{BEGIN}\nx = 1\n{BEGIN}\nreturn x\n{END}\n{END}\n"), "inside the region"),
    "end without begin": (region(f"return 1\n{END}\n"), "without a BEGIN"),
    "empty": (region(f"x = 1\n{BEGIN}\n{END}\nreturn x\n"), "empty"),
    "begin not alone": (region(f"x = 1  {BEGIN}\nreturn x\n{END}\n"), "alone on its line"),
    "end not alone": (region(f"{BEGIN}\nreturn 1  {END}\n"), "alone on its line"),
    "outside a function": (f"{BEGIN}\nX = 1\n{END}\n", "inside a function"),
    "in a class body": (f"class A:\n    {BEGIN}\n    X = 1\n    {END}\n", "inside a function"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_regions_are_loud_errors(case):
    source, says = MALFORMED[case]
    with pytest.raises(StubError, match=says) as info:
        make_stub(source, "demo", "demo.py")
    assert str(info.value).startswith("demo.py:")  # file:line of the faulty marker


def test_a_region_in_a_file_without_a_topic_is_an_error(tmp_path):
    (tmp_path / "helpers.py").write_text(region(f"{BEGIN}\nreturn 1\n{END}\n"))
    with pytest.raises(StubError, match="no topic"):
        stub_files(tmp_path)


def test_the_teacher_stub_states_the_schedule_not_the_floor_and_the_readme_both():
    """The Teacher's docstring states the contract (the epochs it trains for), never the grader's floor; the README
    repeats the floors and the epochs for the reader: they must not drift."""
    from pathlib import Path

    from grader.course.topics import schedule

    root = Path(__file__).parents[1]
    checks = ast.parse((root / "grader" / "checks" / "test_end_to_end.py").read_text())  # not imported: no marks
    floors = {node.targets[0].id: ast.literal_eval(node.value) for node in checks.body
              if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "").endswith("_FLOOR")}
    teacher_floor, student_floor = floors["TEACHER_FLOOR"], floors["STUDENT_FLOOR"]

    doc = importlib.import_module("exercises.models").Teacher.__doc__
    assert f"in {schedule()['epochs']} epochs" in doc, "the Teacher's docstring names another number of epochs"
    assert f"{teacher_floor:.1%}" not in doc and "check all" not in doc, "a stub states the contract, not a floor"
    readme = " ".join((root / "README.md").read_text().split())  # line breaks do not count
    assert f"Teacher {teacher_floor:.1%}, distilled Student {student_floor:.1%}" in readme, "README: floors differ"
    assert f"schedule of `grader/course/topics.toml`: {schedule()['epochs']} epochs" in readme, "README: schedule differs"
