"""A learner's model as plain data: its graph of aten operations and its tensors (``torch.export``).

The judge runs the graph itself (``grader.grading.graph``) on images the worker never sees, so an
accuracy the judge reports is one it measured. The graph is exported in eval mode for a fixed batch
size; the judge feeds it batches of exactly that size.
"""

from __future__ import annotations

import operator

import torch
from torch import nn


def _arg(value):
    """A node's argument as plain data: other nodes by name, numbers, lists, dtypes."""
    if isinstance(value, torch.fx.Node):
        return {"node": value.name}
    if isinstance(value, (list, tuple)):
        items = [_arg(v) for v in value]
        return items if isinstance(value, list) else tuple(items)
    if isinstance(value, torch.dtype) or value is None or type(value) in (bool, int, float, str):
        return value
    if isinstance(value, torch.device):
        return {"device": str(value)}
    if isinstance(value, torch.memory_format):
        return {"memory_format": str(value)}
    if isinstance(value, torch.layout):
        return {"layout": str(value)}
    return {"unsupported": f"{type(value).__name__}"}


def _target(target) -> str:
    if isinstance(target, torch._ops.OpOverload):
        return f"aten.{target._schema.name.split('::')[-1]}.{target._overloadname}" \
            if target.namespace == "aten" else f"{target.namespace}.{target.__name__}"
    if target is operator.getitem:
        return "getitem"
    return f"python.{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', repr(target))}"


def export_model(model: nn.Module, batch: int) -> dict:
    """The model in eval mode as ``{"nodes": [...], "inputs": [...], "tensors": {...}}``."""
    model.eval()
    example = torch.zeros(batch, 1, 28, 28)
    with torch.no_grad():
        program = torch.export.export(model, (example,))
    state = program.state_dict
    inputs, tensors = [], {}
    for spec in program.graph_signature.input_specs:
        kind = spec.kind.name.lower()  # parameter, buffer, constant_tensor, user_input
        name = spec.arg.name
        inputs.append({"name": name, "kind": kind, "target": spec.target})
        if kind in ("parameter", "buffer"):
            tensors[name] = state[spec.target].detach() if spec.target in state else program.constants[spec.target]
        elif kind == "constant_tensor":
            tensors[name] = program.constants[spec.target].detach()
    nodes = []
    for node in program.graph.nodes:
        if node.op == "placeholder":
            continue
        if node.op == "output":
            nodes.append({"name": node.name, "op": "output", "args": [_arg(a) for a in node.args[0]]})
            continue
        nodes.append({"name": node.name, "op": node.op, "target": _target(node.target),
                      "args": [_arg(a) for a in node.args], "kwargs": {k: _arg(v) for k, v in node.kwargs.items()}})
    return {"nodes": nodes, "inputs": inputs, "tensors": tensors, "batch": batch}
