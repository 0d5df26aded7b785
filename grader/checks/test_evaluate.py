"""Hidden checks of the topic `evaluate`: the accuracy of a model on a data set.

The model and data come from grader.diagnose.evaluate: a "model" that reads its logits off the
image, so the grader knows which examples it gets right, and a data set whose last batch is partial.
The learner's evaluate runs in the worker on them; the judge compares what it returned with the exact
fraction. Gradient tracking is seen by a hook in the worker (it changes no value the judge could check);
eval mode is both seen there and measured here: with dropout on, the accuracy would not be exact.
"""

from __future__ import annotations

import math
import numbers

import pytest
import torch
from torch import Tensor

from grader.grading.checking import CheckFailed, describe_type, difference, expect, fmt, learner_line
from grader.diagnose.evaluate import (EVAL_MODE, NO_GRAD, PARTIAL, exact_fraction, recognise_evaluate, run_remote,
                                      where)
from grader.grading.remote import LearnerError
from grader.worker.wire import Opaque

pytestmark = [pytest.mark.evaluate, pytest.mark.usefixtures("one_thread")]

EXACT = 1e-6  # counts are exact; a float32 mean per batch (a correct formulation) rounds at ~1e-7
DROPOUT = 0.5  # drops half of the logits in training mode, which changes most predictions


def run(submission, reference, dropout: float = 0.0) -> dict:
    """The learner's evaluate on the fixed data, in the worker: {"value", "calls"}; an error that a known
    mistake explains becomes its message."""
    fn = submission.evaluate.evaluate
    try:
        return run_remote(fn, PARTIAL, dropout)
    except LearnerError as err:
        # argmax over the batch fails on a partial batch (shapes (10,) and (6,)); on full batches of 10 it runs
        mistake = recognise_evaluate(fn, reference.evaluate.evaluate) if err.type == "RuntimeError" else None
        if mistake:
            raise CheckFailed(f"{raised(err)} {mistake.says}", mistake=mistake.id) from err
        raise


def raised(err: LearnerError) -> str:
    """"evaluate, on a data set of 70 examples in batches of 32, raised RuntimeError: <its message>." """
    lines = [line.strip() for line in (err.message or "").strip().splitlines() if line.strip()]
    error = f"{err.type}: {lines[0][:500]}" if lines else f"{err.type} (with no message)"
    end = "" if error.endswith((".", "?", "!")) else "."
    return (f"evaluate, on a data set of {sum(s for s, _ in PARTIAL)} examples in batches of {PARTIAL[0][0]} (the "
            f"last one holds {PARTIAL[-1][0]}), raised {error}{end}")


def failed(submission, message: str, targets: list[str], mistake=None) -> CheckFailed:
    """The verdict, pointing at the line of the learner's evaluate that ``targets`` find (source.find);
    ``mistake``: the recognised Mistake, if any (its id goes with the verdict)."""
    return CheckFailed(message, learner_line(submission, "evaluate", "evaluate", targets),
                       mistake=mistake.id if mistake else None)


def explain(submission, reference, got, want: float) -> CheckFailed:
    """The verdict on a wrong result: the recognised mistake, or exactly how the numbers differ."""
    mistake = recognise_evaluate(submission.evaluate.evaluate, reference.evaluate.evaluate)
    data = (f"on {sum(s for s, _ in PARTIAL)} examples in batches of {PARTIAL[0][0]} (the last one holds "
            f"{PARTIAL[-1][0]}), of which the model gets {sum(n for _, n in PARTIAL)} right")
    if mistake:
        return failed(submission, f"evaluate returned {fmt(got)} {data}: expected {want:.6g}. {mistake.says}",
                      where(mistake), mistake)
    if isinstance(got, float) and math.isnan(got):
        return failed(submission, f"evaluate returned NaN {data}: expected {want:.6g}. A fraction of examples is "
                      "never NaN: is a division 0 / 0 somewhere (an empty count, or a total that stays 0)?",
                      where(None))
    diff = difference(torch.tensor(float(got)), torch.tensor(want), rtol=0.0, atol=EXACT)
    return failed(submission, f"evaluate {data}: {diff}. It matches none of the common mistakes: count the correct "
                  "predictions over all batches and divide by the number of examples.", where(None))


def test_returns_a_float_between_0_and_1(submission, reference):
    """returns a Python float between 0 and 1"""
    got = run(submission, reference)["value"]
    if isinstance(got, Tensor):
        raise failed(submission, f"evaluate should return a Python float, but returned {describe_type(got)} "
                     f"({fmt(got)}): turn tensors into Python numbers with .item(), e.g. "
                     "correct += (predicted == y).sum().item().", ["return"])
    if isinstance(got, numbers.Integral):
        raise explain(submission, reference, got, exact_fraction())
    expect(isinstance(got, float), f"evaluate should return a Python float, but returned {describe_type(got)}"
           + (f" ({got.text}): convert it with float(...)." if isinstance(got, Opaque) else "."))
    if not 0.0 <= got <= 1.0:
        raise explain(submission, reference, got, exact_fraction())


def test_is_the_fraction_of_all_examples(submission, reference):
    """is the fraction of all examples right, when the last batch is partial"""
    got = run(submission, reference)["value"]
    if isinstance(got, Tensor) and got.numel() == 1 and got.is_floating_point():
        got = got.item()  # the type is the other check's business
    elif isinstance(got, Opaque) and got.number is not None:
        got = got.number
    expect(isinstance(got, (int, float)) and not isinstance(got, bool),
           f"evaluate should return a Python float, but returned {describe_type(got)}.")
    want = exact_fraction()
    if not abs(got - want) <= EXACT:  # NaN is never right
        raise explain(submission, reference, got, want)


def test_puts_the_model_in_eval_mode(submission, reference):
    """puts the model in eval mode (dropout off)"""
    plain = run(submission, reference)
    with_dropout = run(submission, reference, dropout=DROPOUT)
    expect(with_dropout["calls"], "evaluate never ran the model: call model(x) on each batch of the loader.")
    if any(training for training, _ in with_dropout["calls"]):
        raise failed(submission, EVAL_MODE, where("eval mode"))
    # What the judge measures itself: with dropout on, the accuracy would not be the exact fraction.
    want = exact_fraction()
    if _close(plain["value"], want) and not _close(with_dropout["value"], want):
        raise failed(submission, EVAL_MODE, where("eval mode"))


def test_builds_no_autograd_graph(submission, reference):
    """builds no autograd graph (runs under torch.no_grad)"""
    calls = run(submission, reference)["calls"]
    expect(calls, "evaluate never ran the model: call model(x) on each batch of the loader.")
    if any(grad for _, grad in calls):
        raise failed(submission, NO_GRAD, where("no grad"))


def _close(value, want: float) -> bool:
    return type(value) is float and abs(value - want) <= EXACT
