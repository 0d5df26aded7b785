"""The grader's parts import each other in one direction only: no circle between modules, and no sub-package
imports one above it (README, Layout). Read from the source (every import statement, those inside functions
too), so a lazy import cannot hide a circle."""

import ast
from pathlib import Path

GRADER = Path(__file__).resolve().parent.parent / "grader"

# Lowest first: a sub-package may import those before it, never one after it.
LAYERS = ["worker", "course", "lab", "grading", "diagnose", "checks", "notebook", "classroom", "cli"]


def modules() -> dict[str, tuple[Path, bool]]:
    found = {}
    for path in GRADER.rglob("*.py"):
        parts = list(path.relative_to(GRADER.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def imports() -> dict[str, set[str]]:
    """Each grader module -> the grader modules it imports (a package's name where no module of it is named)."""
    known = modules()
    graph = {}
    for name, (path, is_package) in known.items():
        package = name if is_package else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    targets.add(f"{module}.{alias.name}" if f"{module}.{alias.name}" in known else module)
        graph[name] = {t for t in targets if t in known and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected parts of more than one module (Tarjan), each a circle of imports."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                found.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in LAYERS else None


def test_no_module_imports_itself_back_through_others():
    assert cycles(imports()) == []


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_part_imports_a_part_above_it():
    upward = sorted(f"{name} imports {target}" for name, targets in imports().items() for target in targets
                    if layer(name) and layer(target) and LAYERS.index(layer(target)) > LAYERS.index(layer(name)))
    assert upward == []


def test_every_module_lives_in_a_named_part():
    loose = sorted(name for name in imports() if name != "grader" and layer(name) is None)
    assert loose == [], "each module belongs in one of the sub-packages named in LAYERS (and in README, Layout)"


def test_the_worker_imports_nothing_of_the_grader():
    # the sandbox mounts grader/worker alone (as learnkd_worker): an import of grader.* would fail there
    leaks = sorted(f"{name} imports {target}" for name, targets in imports().items() if layer(name) == "worker"
                   for target in targets if layer(target) != "worker")
    assert leaks == []
