"""The common mistakes of the topic `models`, recognised from what a learner's model does.

A model is judged by its outputs, its parameters (counted by the judge on its exported graph) and,
when it cannot learn, by what its layers do to the image on the way (recorded by forward hooks in the
worker, "model.layers"). Each function returns one sentence that says what the model does and what to
do instead, or None when that mistake is not there.
"""

from __future__ import annotations

import re

import torch
from torch import Tensor, nn

CLASSES = 10
STUDENT_BUDGET = 25_000  # the exercise contract: the Student has at most this many parameters
RATIO = 10  # ... and at least RATIO x fewer than the Teacher
ROW_SUM_ATOL = 1e-3  # softmax rows sum to 1 within float32 rounding
POOLING = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.AvgPool2d, nn.MaxPool2d, nn.LPPool2d)
MATMUL = re.compile(r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)")


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------------------------------------------
# Outputs


def shape_problem(cls: str, shape: tuple, batch: int) -> str:
    """Why an output of ``shape`` is not (batch, 10), in words."""
    want = (batch, CLASSES)
    head = f"{cls}() mapped a batch of {batch} image{'s' if batch > 1 else ''} to a tensor of shape {shape}, not {want}"
    if len(shape) == 4 and shape[:2] == want:
        return (f"{head}: the logits still carry the image's height and width. Flatten them to (B, 10) with "
                "x.flatten(1) (or nn.Flatten()) before returning.")
    if len(shape) > 2 and shape[0] == batch:
        return (f"{head}: flatten the features to (B, features) with x.flatten(1) (or nn.Flatten()) before the "
                "Linear layers, so that each image gives one row of 10 logits.")
    if batch == 1 and shape == (CLASSES,):
        return (f"{head}: the batch dimension is gone, as .squeeze() removes every dimension of size 1, the batch's "
                "too when B = 1. Use x.flatten(1), or squeeze only the dimensions you mean: x.squeeze(-1).squeeze(-1).")
    if len(shape) == 1 and shape[0] == batch * CLASSES:
        return (f"{head}: the batch dimension was flattened together with the rest (x.flatten() or x.view(-1)). "
                "Keep it: x.flatten(1) or x.view(x.size(0), -1).")
    if len(shape) == 2 and shape[0] == batch:
        return (f"{head}: {shape[1]} scores per image. The last layer must give one per class: "
                f"Linear(..., {CLASSES}).")
    if len(shape) == 2 and shape[0] * shape[1] == batch * CLASSES:
        return (f"{head}: the features were reshaped with the wrong batch size (x.view(-1, n) with the wrong n?). "
                "Use x.flatten(1) or x.view(x.size(0), -1), which keep one row per image.")
    return f"{head}. The forward pass must end in a Linear layer with 10 outputs applied to (B, features)."


def runtime_problem(cls: str, err: BaseException, batch: int) -> str | None:
    """A known cause of the error a model raised on a (batch, 1, 28, 28) input, or None."""
    match = MATMUL.search(str(err))
    if not match:
        return None
    rows, features, expected, _ = (int(g) for g in match.groups())
    if rows == batch:
        return (f"{cls}() raised an error in a Linear layer: the flattened features of each image have {features:,} "
                f"values, but the Linear layer expects in_features={expected:,}. Set its in_features to {features:,} "
                "(channels x height x width of the last feature maps), or change the layers before it.")
    return (f"{cls}() raised an error in a Linear layer: it got a {rows:,} x {features:,} matrix for a batch of "
            f"{batch}, so the feature maps were not flattened first (a Linear layer acts on the last dimension only). Add "
            "nn.Flatten() (or x = x.flatten(1)) between the convolutions and the first Linear layer.")


def probability_problem(cls: str, out: Tensor) -> str | None:
    """The output is probabilities (softmax or sigmoid) rather than raw logits."""
    out = out.detach().double()
    if out.ndim != 2 or out.shape[1] != CLASSES:
        return None
    sums = out.sum(dim=1)
    if (out >= 0).all() and torch.allclose(sums, torch.ones_like(sums), atol=ROW_SUM_ATOL):
        return (f"{cls}() returns probabilities (every row is >= 0 and sums to 1): it applies a softmax at the end. "
                "Return the raw scores of the last Linear layer: F.cross_entropy and distillation_loss apply "
                "(log-)softmax themselves, and a second softmax squashes the gradients so the model barely learns.")
    if ((out > 0) & (out < 1)).all():
        return (f"{cls}() returns values between 0 and 1 for every class: it applies a sigmoid at the end. Return the "
                "raw scores of the last Linear layer; the losses apply softmax themselves.")
    return None


# ---------------------------------------------------------------------------------------------------
# What the layers do to the image: read from the worker's report ("model.layers"), which shapes a
# message and decides nothing. Each layer: {"name", "type", "in": shape, "out": shape, "describe"}.

POOLING_TYPES = {cls.__name__ for cls in POOLING}


def _layers(report) -> list[dict]:
    layers = report.get("layers") if isinstance(report, dict) else None
    if not isinstance(layers, list):
        return []
    good = []
    for layer in layers:
        if (isinstance(layer, dict) and isinstance(layer.get("in"), list) and isinstance(layer.get("out"), list)
                and all(type(n) is int for n in layer["in"] + layer["out"])):
            good.append({"name": str(layer.get("name")), "type": str(layer.get("type")),
                         "in": tuple(layer["in"]), "out": tuple(layer["out"])})
    return good


def pooling_problem(cls: str, report) -> str | None:
    """The feature maps are averaged (or max-pooled) down to 1 x 1 before the first Linear layer."""
    layers = _layers(report)
    first_linear = next((i for i, l in enumerate(layers) if l["type"] == "Linear"), None)
    if first_linear is None:
        return None
    before = layers[:first_linear]
    maps = [s for layer in before for s in (layer["in"], layer["out"]) if len(s) == 4]
    if not maps or not any(s[2] * s[3] > 1 for s in maps):
        return None
    features = layers[first_linear]["in"][-1]
    last = maps[-1]
    if last[2] * last[3] == 1:
        maker = next((layer for layer in before if len(layer["in"]) == 4 and len(layer["out"]) == 4
                      and layer["in"][2] * layer["in"][3] > 1 and layer["out"][2] * layer["out"][3] == 1), None)
        if maker is not None and maker["type"] not in POOLING_TYPES:
            return None  # a convolution as wide as the maps: a Linear layer in disguise, not pooling
        where = f"with its layer {maker['name']}, {maker['type']}," if maker else "in forward"
        channels = last[1]
    elif features == last[1]:
        where, channels = "in forward", last[1]
    else:
        return None
    return (f"{cls}() averages each of its {channels} feature maps down to one number {where} before its first "
            "Linear layer, which throws away where the strokes are, so it cannot tell the digits apart well "
            "(models that do this reach about 72% for a Teacher and 32% for a Student here). Flatten the maps "
            "instead: shrink them with stride 2 or max pooling to 7 x 7, then nn.Flatten() and "
            "Linear(channels * 7 * 7, ...).")


def last_layer_problem(cls: str, report) -> str | None:
    """A ReLU (or other clamp) after the last Linear layer: logits that cannot go negative."""
    layers = _layers(report)
    if len(layers) >= 2 and layers[-1]["type"] in ("ReLU", "ReLU6") and layers[-2]["type"] == "Linear":
        return (f"{cls}() ends with a ReLU after its last Linear layer, so its logits cannot go below 0 and the "
                "wrong classes cannot be pushed down: return the last Linear layer's output as it is.")
    return None


def over_budget_problem(report, count: int) -> str:
    """Where a Student's parameters are (the worker's report of its layers), and how to get under the budget."""
    sizes = report.get("sizes") if isinstance(report, dict) else None
    rows = sorted((r for r in sizes if isinstance(r, dict) and type(r.get("parameters")) is int),
                  key=lambda r: -r["parameters"]) if isinstance(sizes, list) else []
    head = f"your Student has {count:,} parameters, more than the budget of {STUDENT_BUDGET:,}"
    if not rows:
        return head + "."
    top = rows[0]
    own = top["parameters"]
    advice = ("Shrink what goes into it: fewer channels in the last convolution, or smaller feature maps "
              "(stride 2 or max pooling) before nn.Flatten(); a hidden Linear layer is the usual culprit, "
              "the flattened features can go straight to Linear(features, 10)."
              if top.get("type") == "Linear" else "Use fewer channels in the convolutions.")
    return f"{head}: {own:,} of them ({own / count:.0%}) are in {top.get('name')}, a {top.get('describe')}. {advice}"


def ratio_problem(teacher: int, student: int) -> str:
    return (f"your Teacher has {teacher:,} parameters and your Student {student:,}: only "
            f"{teacher / student:.1f}x more, where distillation asks for at least {RATIO}x (a Teacher of at least "
            f"{RATIO * student:,}). Make the Teacher wider (more channels, a hidden Linear layer) or the Student "
            "smaller.")
