"""The common mistakes of the topic `evaluate`, and the fixed model and data that reveal them.

The model reads its logits off the first row of pixels, so the grader decides which examples it gets
right; the data set has a partial last batch, so averaging per-batch accuracies or dividing by
batches x batch size gives a different number from the exact fraction. Eval mode and gradient
tracking are watched with a forward pre-hook rather than inferred from values.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.utils.data import DataLoader, TensorDataset

from grader.worker.scenarios import Lookup

from grader.diagnose import Mistake, Probe, named, probe, recognise

CLASSES = 10
BATCH_SIZE = 32
# Correct predictions per batch, out of its size: 30/32, 20/32, 1/6, so the exact fraction (51/70 = 0.7286)
# differs from the mean of the per-batch accuracies (0.5764) and from 51 / (3 x 32) (0.5313).
PARTIAL = ((32, 30), (32, 20), (6, 1))
# Full batches of 10, as many as the classes: argmax over the wrong dimension runs without an error here.
FULL = ((10, 9), (10, 4), (10, 7))


def dataset(batches=PARTIAL, seed: int = 0) -> tuple[Tensor, Tensor]:
    """Images and labels on which ``Lookup`` gets exactly the given number right in each batch."""
    g = torch.Generator().manual_seed(seed)
    sizes = [size for size, _ in batches]
    x = torch.zeros(sum(sizes), 1, 28, 28)
    predicted = torch.randint(0, CLASSES, (sum(sizes),), generator=g)
    x[torch.arange(len(x)), 0, 0, predicted] = 1.0
    right = torch.cat([torch.randperm(size, generator=g) < n for size, n in batches])  # n right in each batch
    y = torch.where(right, predicted, (predicted + 1 + torch.randint(0, CLASSES - 1, predicted.shape, generator=g))
                    % CLASSES)
    return x, y


def exact_fraction(batches=PARTIAL) -> float:
    return sum(n for _, n in batches) / sum(size for size, _ in batches)


def loader(batches=PARTIAL) -> DataLoader:
    """A plain DataLoader, as in the course's notebooks (len(loader.dataset) works on it)."""
    x, y = dataset(batches)
    return DataLoader(TensorDataset(x, y), batch_size=batches[0][0], shuffle=False)


# ---------------------------------------------------------------------------------------------------
# The variants: evaluate(model, loader) with one mistake each.


def _counts(model, loader, dim=1):
    for x, y in loader:
        logits = model(x)
        predicted = logits.argmax() if dim is None else logits.argmax(dim=dim)
        yield (predicted == y).sum().item(), y.numel()


def _reference(model, loader, dim=1, scale=1.0):
    model.eval()
    with torch.no_grad():
        correct = total = 0
        for c, n in _counts(model, loader, dim):
            correct, total = correct + c, total + n
    return scale * correct / total


def mean_of_batches(model, loader):
    model.eval()
    with torch.no_grad():
        accuracies = [c / n for c, n in _counts(model, loader)]
    return sum(accuracies) / len(accuracies)


def batches_times_size(model, loader):
    model.eval()
    with torch.no_grad():
        correct = sum(c for c, _ in _counts(model, loader))
    return correct / (len(loader) * loader.batch_size)


def number_of_batches(model, loader):
    model.eval()
    with torch.no_grad():
        correct = sum(c for c, _ in _counts(model, loader))
    return correct / len(loader)


def last_total(model, loader):
    model.eval()
    with torch.no_grad():
        correct = total = 0
        for c, n in _counts(model, loader):
            correct, total = correct + c, n
    return correct / total


def last_correct(model, loader):
    model.eval()
    with torch.no_grad():
        correct = total = 0
        for c, n in _counts(model, loader):
            correct, total = c, total + n
    return correct / total


def integer_division(model, loader):
    model.eval()
    with torch.no_grad():
        correct = total = 0
        for c, n in _counts(model, loader):
            correct, total = correct + c, total + n
    return correct // total


EVALUATE_MISTAKES = named("evaluate", [
    Mistake("mean of batch accuracies", "You averaged the accuracies of the batches, but the last batch is "
            f"smaller than the others ({PARTIAL[-1][0]} examples here, not {BATCH_SIZE}), so this is not the "
            "fraction of all examples: "
            "add up the correct predictions and the examples over all batches and divide once, at the end.",
            mean_of_batches),
    Mistake("batches x batch size", "You divided by (number of batches) x (batch size) = "
            f"{len(PARTIAL) * BATCH_SIZE}, but the last batch holds fewer examples, so there are only "
            f"{sum(size for size, _ in PARTIAL)}: count the examples as you go (total += y.size(0)) or "
            "use len(loader.dataset).", batches_times_size),
    Mistake("number of batches", "You divided by the number of batches, len(loader), not the number of "
            "examples: count the examples as you go, total += y.size(0).", number_of_batches),
    Mistake("total of the last batch", "Your total holds only the last batch's size (total = y.size(0) instead "
            "of total += y.size(0)): add each batch's size to it.", last_total),
    Mistake("correct of the last batch", "Your count of correct predictions holds only the last batch's "
            "(correct = ... instead of correct += ...): add each batch's count to it.", last_correct),
    Mistake("percentage", "You returned a percentage (100 x correct / total): return the fraction correct / "
            "total, a number between 0 and 1.", lambda model, loader: _reference(model, loader, scale=100.0)),
    Mistake("integer division", "correct // total is integer division, which rounds the fraction down to 0: "
            "use correct / total.", integer_division),
    Mistake("argmax over the batch", "The argmax is taken over the batch (dim=0), which gives one index per "
            "class instead of one class per example: use model(x).argmax(dim=1), over the 10 logits of each row.",
            lambda model, loader: _reference(model, loader, dim=0)),
    Mistake("argmax without dim", "argmax() without dim= returns a single index into the flattened (B, 10) "
            "logits, not one class per example: use model(x).argmax(dim=1).",
            lambda model, loader: _reference(model, loader, dim=None)),
])

# Where each mistake lives in the learner's evaluate: targets of the worker's task source.find
# (grader/worker/source.py), tried in order; the check shows the first line found under its message.
WHERE = {
    "mean of batch accuracies": ["return", "call:append"],
    "batches x batch size": ["return"],
    "number of batches": ["return"],
    "total of the last batch": ["set-in-loop:total", "return"],
    "correct of the last batch": ["set-in-loop:correct", "return"],
    "percentage": ["return"],
    "integer division": ["return"],
    "argmax over the batch": ["call:argmax", "call:max"],
    "argmax without dim": ["call:argmax", "call:max"],
    "eval mode": ["call:train", "for-over:loader", "for"],
    "no grad": ["call:enable_grad", "for-over:loader", "for"],
    "unknown": ["return"],
}


def where(mistake: Mistake | str | None) -> list[str]:
    """The source.find targets of a recognised mistake (or of "eval mode", "no grad"; "unknown" for none)."""
    name = mistake.name if isinstance(mistake, Mistake) else (mistake or "unknown")
    return WHERE.get(name, WHERE["unknown"])


EVAL_MODE = ("model(x) ran in training mode, so dropout was still on and the predictions were random: call "
             "model.eval() before the loop (it switches dropout off and batch norm to its running statistics).")
NO_GRAD = ("model(x) ran with gradient tracking on, which builds an autograd graph that evaluation never uses "
           "(it costs memory and time): run the loop inside `with torch.no_grad():`.")


def partial_probe() -> Probe:
    return probe(PARTIAL)


def full_probe() -> Probe:
    return probe(FULL)


def run_remote(fn, batches=PARTIAL, dropout: float = 0.0) -> dict:
    """The learner's evaluate, in the worker, on a Lookup model and a DataLoader of ``dataset(batches)``:
    ``{"value": what it returned, "calls": [(training, grad enabled) of each forward pass]}``."""
    x, y = dataset(batches)
    reply = fn.remote.ask({"op": "evaluate", "x": x, "y": y, "batch_size": batches[0][0], "dropout": dropout},
                          key="evaluate.evaluate")
    if not isinstance(reply, dict):
        raise ValueError("the worker's reply to evaluate is not what was asked for")
    calls = reply.get("calls")
    calls = [tuple(c) for c in calls if isinstance(c, (list, tuple)) and len(c) == 2] if isinstance(calls, list) else []
    return {"value": reply.get("value"), "calls": [(c[0] is True, c[1] is True) for c in calls]}


def fresh(fn, p: Probe):
    """``fn`` on a fresh Lookup model and loader of the probe's batches (the learner's runs in the worker)."""
    (batches,) = p.args
    if hasattr(fn, "remote"):
        return run_remote(fn, batches)["value"]
    return fn(Lookup(), loader(batches))


def recognise_evaluate(learner, reference) -> Mistake | None:
    """The mistake in the learner's evaluate, judged on the values it returns, or None.

    Argmax over the batch raises an error on a partial batch (shapes (10,) and (6,) cannot be
    compared); when the learner's code raises there, it is judged on full batches of 10 alone.
    """
    probes = [partial_probe(), full_probe()]
    try:
        fresh(learner, probes[0])
    except Exception:
        probes = probes[1:]
    return recognise(learner, EVALUATE_MISTAKES, probes, observe=fresh, correct=reference, rtol=0, atol=1e-6)
