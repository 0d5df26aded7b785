"""Finding the learner's line that a value mistake comes from (task source.find), for messages only.

A check that finds a wrong value (a loss without its T**2, a loop that never clears the gradients)
names the mistake; this task finds the line of the learner's function that holds the responsible code,
so that the judge can show it under the message as it shows the frames of an error
(``exercises/loss.py:18 in distillation_loss: soft = F.kl_div(...)``). It reads the learner's file
with ``ast`` and runs nothing. The judge asks with a list of targets, tried in order; the first that
matches gives the line:

    call:NAME       a call of NAME, as a name or an attribute (``kl_div`` matches ``F.kl_div(...)``);
                    searched in the function, then in its file's top-level statements (``kl = nn.KLDivLoss()``)
    call:OBJ.NAME   a call of the attribute NAME of the name OBJ (``teacher.train()``)
    loss-call       a call of distillation_loss under any name the module binds it to
    for-over:NAME   a ``for`` loop whose iterable mentions NAME (``for x, y in loader``)
    for             the function's first ``for`` loop
    uses:NAME       the first statement that reads the name NAME
    set-in-loop:NAME  an assignment ``NAME = ...`` inside a loop (``total = y.size(0)`` instead of ``+=``)
    in-place        an augmented assignment (``x /= T``) or an in-place method call (``x.div_(T)``)
    return          the function's last ``return``

The reply is a list of frames as ``serve.learner_frames`` makes them (file, line, function, source
line); empty when nothing matches or the function is not a plain function of the learner's folder.
"""

from __future__ import annotations

import ast
import inspect
import sys
from pathlib import Path

from .registry import task

MAX_TARGETS, MAX_TEXT = 20, 300


def _called(node: ast.Call) -> tuple[str | None, str | None]:
    """(object, name) of a call: ``F.kl_div(...)`` -> ("F", "kl_div"), ``teacher(x)`` -> (None, "teacher")."""
    func = node.func
    if isinstance(func, ast.Name):
        return None, func.id
    if isinstance(func, ast.Attribute):
        owner = func.value.id if isinstance(func.value, ast.Name) else None
        return owner, func.attr
    return None, None


def _statements(tree: ast.AST) -> list[ast.stmt]:
    """The simple statements and loop headers of ``tree``, in source order (not the nested bodies' twice)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.stmt) and not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                  ast.ClassDef)):
            found.append(node)
    return sorted(found, key=lambda n: (n.lineno, n.col_offset))


def _header(node: ast.stmt) -> list[ast.AST]:
    """The parts of a statement that belong to its own line(s): a loop's target and iterable, not its body."""
    if isinstance(node, (ast.For, ast.AsyncFor)):
        return [node.target, node.iter]
    if isinstance(node, (ast.While, ast.If)):
        return [node.test]
    if isinstance(node, (ast.With, ast.AsyncWith)):
        return list(node.items)
    if isinstance(node, ast.Try):
        return []
    return [node]


def _matches(node: ast.stmt, target: str, aliases: set[str]) -> bool:
    kind, _, what = target.partition(":")
    parts = [n for h in _header(node) for n in ast.walk(h)]
    if kind == "call" or kind == "loss-call":
        owner_wanted, _, name_wanted = what.rpartition(".")
        for n in parts:
            if not isinstance(n, ast.Call):
                continue
            owner, name = _called(n)
            if kind == "loss-call":
                if owner is None and name in aliases:
                    return True
            elif name == name_wanted and (not owner_wanted or owner == owner_wanted):
                return True
        return False
    if kind == "for-over":
        return isinstance(node, (ast.For, ast.AsyncFor)) and any(
            isinstance(n, ast.Name) and n.id == what for n in ast.walk(node.iter))
    if kind == "for":
        return isinstance(node, (ast.For, ast.AsyncFor))
    if kind == "uses":
        return any(isinstance(n, ast.Name) and n.id == what and isinstance(n.ctx, ast.Load) for n in parts)
    if kind == "set-in-loop":  # marked by find_lines on the assignments inside a loop
        return isinstance(node, ast.Assign) and getattr(node, "in_loop", False) and any(
            isinstance(t, ast.Name) and t.id == what for t in node.targets)
    if kind == "in-place":
        if isinstance(node, ast.AugAssign):
            return True
        return any(isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and n.func.attr.endswith("_")
                   and not n.func.attr.startswith("_") and n.func.attr not in ("requires_grad_", "zero_")
                   for n in parts)
    if kind == "return":
        return isinstance(node, ast.Return)
    return False


def find_lines(fn, folder: Path, targets: list[str], module=None) -> list[dict]:
    """The frame of the first statement matching the first target that matches, or []."""
    code = getattr(fn, "__code__", None)
    if code is None:
        return []
    path = Path(code.co_filename)
    if path.parent != folder or path.suffix != ".py" or not path.is_file():
        return []
    source = path.read_text(errors="replace")
    tree = ast.parse(source, path.name)
    lines = source.splitlines()
    owner = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.name == code.co_name
                  and min([n.lineno] + [d.lineno for d in n.decorator_list]) <= code.co_firstlineno
                  <= n.body[0].lineno), None)
    if owner is None:
        return []
    aliases = {"distillation_loss"}
    if module is not None:
        loss = sys.modules.get(module.__name__.rsplit(".", 1)[0] + ".loss")
        wanted = getattr(loss, "distillation_loss", None)
        aliases |= {name for name, value in vars(module).items() if wanted is not None and value is wanted}
    inside = _statements(owner)
    for loop in ast.walk(owner):
        if isinstance(loop, (ast.For, ast.AsyncFor, ast.While)):
            for node in loop.body:
                for inner in ast.walk(node):
                    inner.in_loop = True
    # the file's own statements, outside every function and class (``kl = nn.KLDivLoss()``)
    everywhere = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    for target in targets[:MAX_TARGETS]:
        found = [n for n in inside if _matches(n, target, aliases)]
        if not found and target.startswith("call:"):
            found = [n for n in everywhere if _matches(n, target, aliases)]
        if found:
            node = found[-1] if target == "return" else found[0]
            around = [f for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and f.lineno <= node.lineno <= (f.end_lineno or f.lineno)]
            function = max(around, key=lambda f: f.lineno).name if around else "<module>"
            text = lines[node.lineno - 1].strip() if node.lineno <= len(lines) else ""
            return [{"file": path.name, "line": node.lineno, "name": function, "text": text[:MAX_TEXT]}]
    return []


@task("source.find")
def source_find(worker, request: dict) -> dict:
    """The learner's line in ``module.name`` matching the first of ``targets`` that matches (see above)."""
    module = worker.modules.get(str(request.get("module")))
    fn = getattr(module, str(request.get("name")), None) if module is not None else None
    targets = [t for t in request.get("targets") or [] if isinstance(t, str)]
    if fn is None:
        return {"frames": []}
    fn = inspect.unwrap(fn) if callable(fn) else fn
    try:
        return {"frames": find_lines(fn, worker.folder, targets, module)}
    except (SyntaxError, ValueError, OSError, RecursionError):
        return {"frames": []}
