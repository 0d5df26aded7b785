"""What the judge can ask the worker to do with the learner's code. Each task returns plain data.

    call        a learner's function on the judge's arguments (its value, optionally a gradient)
    evaluate    the learner's evaluate on a Lookup model and a DataLoader built from the judge's data
    model.*     build a learner's model, run it, train it briefly, describe its layers, export it
    train.*     run train_model / distill on probes and record what they did (``tracing``)
    pipeline.*  the end-to-end trainings on MNIST (``pipeline``)
    source.find the learner's line behind a value mistake, for the message (``source``)

A model trained by one request is kept, under the name the judge gave it, for the next ones.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import exporting, scenarios
from .registry import TASKS, function, task


def run(worker, request: dict):
    op = request.get("op")
    if op not in TASKS:
        raise ValueError(f"unknown request {op!r}")
    seed = request.get("seed")
    if type(seed) is int:
        torch.manual_seed(seed)
    return TASKS[op](worker, request)


# ---------------------------------------------------------------------------------------------------
# Functions on plain values


@task("call")
def call(worker, request: dict) -> dict:
    """``fn(*args, **kwargs)``; with ``grad_of``: the gradient of a scalar result with respect to that argument."""
    fn = function(worker, request["module"], request["name"])
    args, kwargs = list(request.get("args", [])), dict(request.get("kwargs", {}))
    grad_of = request.get("grad_of")
    if grad_of is not None:
        args[grad_of] = args[grad_of].detach().clone().requires_grad_(True)
    out = fn(*args, **kwargs)
    reply = {"value": out, "requires_grad": isinstance(out, Tensor) and bool(out.requires_grad)}
    if grad_of is not None and isinstance(out, Tensor) and out.numel() == 1 and out.requires_grad:
        out.reshape(()).backward()
        reply["grad"] = args[grad_of].grad
    if request.get("return_args"):
        reply["args"] = args
    return reply


@task("evaluate")
def evaluate(worker, request: dict) -> dict:
    """The learner's evaluate on a Lookup model and a plain DataLoader of the judge's images."""
    from torch.utils.data import DataLoader, TensorDataset

    model = scenarios.Lookup(dropout=request.get("dropout", 0.0))
    calls = scenarios.watch(model.dropout)  # a submodule's hook runs even when the learner calls model.forward(x)
    loader = DataLoader(TensorDataset(request["x"], request["y"]), batch_size=request["batch_size"], shuffle=False)
    value = function(worker, "evaluate", "evaluate")(model, loader)
    return {"value": value, "calls": calls}


# ---------------------------------------------------------------------------------------------------
# Models


def build(worker, name: str) -> nn.Module:
    return function(worker, "models", name)()


def kept(worker, request: dict) -> nn.Module:
    """A model trained by an earlier request (``handle``), or a new one of class ``name``."""
    handle = request.get("handle")
    if handle:
        return worker.models[handle]
    return build(worker, request["name"])


@task("model.forward")
def model_forward(worker, request: dict) -> dict:
    model = build(worker, request["name"])
    if not isinstance(model, nn.Module):
        return {"module": False, "type": f"{type(model).__module__}.{type(model).__qualname__}"}
    model.train(bool(request.get("train")))
    with torch.no_grad():
        out = model(request["x"])
    return {"module": True, "out": out}


@task("model.export")
def model_export(worker, request: dict) -> dict:
    """The model (new, or kept under ``handle``) as a graph the judge runs and counts itself."""
    model = kept(worker, request)
    if not isinstance(model, nn.Module):
        return {"module": False, "type": f"{type(model).__module__}.{type(model).__qualname__}"}
    return {"module": True, "graph": exporting.export_model(model, request.get("batch", 1))}


@task("model.fit")
def model_fit(worker, request: dict) -> dict:
    """A new model of class ``name`` trained for one pass of plain Adam on the judge's images, kept as ``handle``."""
    model = build(worker, request["name"])
    worker.models[request["handle"]] = model
    x = scenarios.normalise(request["images"])
    loader = scenarios.Budgeted(scenarios.Batches(x, request["labels"], request["batch_size"], shuffle=True,
                                                  seed=request.get("seed") or 0), request["budget_s"])
    scenarios.fit(model, loader, request["lr"])
    return {"used": loader.used, "batches": len(loader), "cut": loader.cut}


@task("model.layers")
def model_layers(worker, request: dict) -> dict:
    """For messages only: each layer that ran (type, shapes), and where the parameters are."""
    model = kept(worker, request)
    seen, handles = [], []
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            def hook(mod, args, out, name=name):
                inp = args[0] if args and isinstance(args[0], Tensor) else None
                if inp is not None and isinstance(out, Tensor):
                    seen.append({"name": name, "type": type(mod).__name__, "in": list(inp.shape),
                                 "out": list(out.shape), "describe": describe_layer(mod)})
            handles.append(module.register_forward_hook(hook))
    try:
        model.eval()
        with torch.no_grad():
            model(request["x"])
    except Exception:
        pass
    finally:
        for h in handles:
            h.remove()
    sizes = []
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own:
            sizes.append({"name": name or type(module).__name__, "type": type(module).__name__,
                          "describe": describe_layer(module), "parameters": own})
    return {"layers": seen, "sizes": sizes}


def describe_layer(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"Linear({module.in_features:,}, {module.out_features:,})"
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size
        return f"Conv2d({module.in_channels}, {module.out_channels}, kernel_size={k[0] if k[0] == k[1] else k})"
    return type(module).__name__


# The tasks of the topic `train`, of the end-to-end run and of finding a learner's line live in modules of their own.
from . import pipeline, source, tracing  # noqa: E402,F401  (they register their tasks)
