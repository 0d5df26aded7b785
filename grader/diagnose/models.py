"""The common mistakes of the topic `models`, recognised from what a learner's model does.

A model is judged by its outputs, its parameters and, when it cannot learn, by what its layers do to
the image on the way (forward hooks on every layer). Each function returns one sentence that says
what the model does and what to do instead, or None when that mistake is not there.
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


def layer_sizes(model: nn.Module) -> list[tuple[str, nn.Module, int]]:
    """(name, layer, parameters) of every layer that holds parameters of its own, largest first."""
    rows = []
    for name, module in model.named_modules():
        own = sum(p.numel() for p in module.parameters(recurse=False))
        if own:
            rows.append((name or type(module).__name__, module, own))
    return sorted(rows, key=lambda r: -r[2])


def describe_layer(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"Linear({module.in_features:,}, {module.out_features:,})"
    if isinstance(module, nn.Conv2d):
        k = module.kernel_size
        return f"Conv2d({module.in_channels}, {module.out_channels}, kernel_size={k[0] if k[0] == k[1] else k})"
    return type(module).__name__


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
# What the layers do to the image


def _leaf_activations(model: nn.Module, x: Tensor) -> list[tuple[str, nn.Module, tuple, tuple]]:
    """(name, layer, input shape, output shape) of every layer without children, in the order they ran."""
    seen, handles = [], []
    for name, module in model.named_modules():
        if next(module.children(), None) is None:
            def hook(mod, args, out, name=name):
                inp = args[0] if args and isinstance(args[0], Tensor) else None
                if inp is not None and isinstance(out, Tensor):
                    seen.append((name, mod, tuple(inp.shape), tuple(out.shape)))
            handles.append(module.register_forward_hook(hook))
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return seen


def pooling_problem(cls: str, model: nn.Module, x: Tensor) -> str | None:
    """The feature maps are averaged (or max-pooled) down to 1 x 1 before the first Linear layer."""
    try:
        layers = _leaf_activations(model, x)
    except Exception:
        return None
    first_linear = next((i for i, l in enumerate(layers) if isinstance(l[1], nn.Linear)), None)
    if first_linear is None:
        return None
    before = layers[:first_linear]
    maps = [s for _, _, inp, out in before for s in (inp, out) if len(s) == 4]
    if not maps or not any(s[2] * s[3] > 1 for s in maps):
        return None
    features = layers[first_linear][2][-1]
    last = maps[-1]
    if last[2] * last[3] == 1:
        maker = next(((name, m) for name, m, inp, out in before if len(inp) == 4 and len(out) == 4
                      and inp[2] * inp[3] > 1 and out[2] * out[3] == 1), None)
        if maker is not None and not isinstance(maker[1], POOLING):
            return None  # a convolution as wide as the maps: a Linear layer in disguise, not pooling
        where = f"with its layer {maker[0]}, {type(maker[1]).__name__}," if maker else "in forward"
        channels = last[1]
    elif features == last[1]:
        where, channels = "in forward", last[1]
    else:
        return None
    return (f"{cls}() averages each of its {channels} feature maps down to one number {where} before its first "
            "Linear layer, which throws away where the strokes are, so it cannot tell the digits apart well (the seed "
            "lab's models did this and reached 72% and 32%). Flatten the maps instead: shrink them with stride 2 or max "
            "pooling to 7 x 7, then nn.Flatten() and Linear(channels * 7 * 7, ...).")


def last_layer_problem(cls: str, model: nn.Module, x: Tensor) -> str | None:
    """A ReLU (or other clamp) after the last Linear layer: logits that cannot go negative."""
    try:
        layers = _leaf_activations(model, x)
    except Exception:
        return None
    if len(layers) >= 2 and isinstance(layers[-1][1], (nn.ReLU, nn.ReLU6)) and isinstance(layers[-2][1], nn.Linear):
        return (f"{cls}() ends with a ReLU after its last Linear layer, so its logits cannot go below 0 and the "
                "wrong classes cannot be pushed down: return the last Linear layer's output as it is.")
    return None


def over_budget_problem(model: nn.Module, count: int) -> str:
    """Where a Student's parameters are, and how to get under the budget."""
    rows = layer_sizes(model)
    head = f"your Student has {count:,} parameters, more than the budget of {STUDENT_BUDGET:,}"
    if not rows:
        return head + "."
    name, layer, own = rows[0]
    advice = ("Shrink what goes into it: fewer channels in the last convolution, or smaller feature maps "
              "(stride 2 or max pooling) before nn.Flatten(); a hidden Linear layer is the usual culprit, "
              "the flattened features can go straight to Linear(features, 10)."
              if isinstance(layer, nn.Linear) else "Use fewer channels in the convolutions.")
    return (f"{head}: {own:,} of them ({own / count:.0%}) are in {name}, a {describe_layer(layer)}. {advice}")


def ratio_problem(teacher: int, student: int) -> str:
    return (f"your Teacher has {teacher:,} parameters and your Student {student:,}: only "
            f"{teacher / student:.1f}x more, where distillation asks for at least {RATIO}x (a Teacher of at least "
            f"{RATIO * student:,}). Make the Teacher wider (more channels, a hidden Linear layer) or the Student "
            "smaller.")
