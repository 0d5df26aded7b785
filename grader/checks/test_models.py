"""Hidden checks of the topic `models`: the Teacher and the Student.

Outputs and parameter counts are checked on random images; whether a model can learn is checked by
training it briefly on real MNIST with the reference train_model (so a bug in the learner's loop
cannot fail this topic) and measuring it with the reference evaluate.
"""

from __future__ import annotations

import copy
import time

import pytest
import torch
import torch._dynamo  # noqa: F401 (before the guard's snapshot: its import replaces torch.manual_seed, and the
#                      reference loop's optimizer imports it)

from grader.checking import CheckFailed, expect, expect_tensor
from grader.data import Batches, load_mnist
from grader.diagnose.models import (RATIO, STUDENT_BUDGET, last_layer_problem, over_budget_problem, parameter_count,
                                    pooling_problem, probability_problem, ratio_problem, runtime_problem,
                                    shape_problem)
from grader.pipeline import size_kb

pytestmark = [pytest.mark.models, pytest.mark.usefixtures("one_thread")]

MODELS = ["Teacher", "Student"]
IMAGE = (1, 28, 28)
# The short training: one epoch of the reference train_model on 2,048 MNIST images (batches of 32,
# lr 3e-3), measured on the next 500. The reference Teacher reaches ~93% and Student ~86%; the seed
# lab's global-average-pooling models stay under 30%.
FLOOR_IMAGES, HELD_OUT, FLOOR_BATCH, FLOOR_LR = 2048, 500, 32, 3e-3
ACCURACY_FLOOR = 0.5
# A model slow enough to pass this on a busy machine still trains on part of the images: the training
# stops after this many seconds and is judged on what it learnt by then.
TRAINING_BUDGET_S = 12.0


def build(submission, name: str):
    return getattr(submission.models, name)()


def forward(model, name: str, x):
    """``model(x)``; a shape error in a Linear layer is explained, other errors reach the learner as they are."""
    try:
        return model(x)
    except RuntimeError as err:
        problem = runtime_problem(name, err, x.shape[0])
        if problem is None:
            raise
        raise CheckFailed(problem).with_traceback(err.__traceback__) from None


@pytest.mark.parametrize("batch", [1, 16], ids=lambda b: f"B={b}")
@pytest.mark.parametrize("name", MODELS)
def test_maps_a_batch_to_logits_of_shape_B_by_10(submission, name, batch):
    """maps a batch of B images (B, 1, 28, 28) to (B, 10) logits"""
    model = build(submission, name)
    expect(isinstance(model, torch.nn.Module), f"{name}() should build a torch.nn.Module, but it is a "
                                               f"{type(model).__name__}: subclass nn.Module.")
    # B = 1 as evaluate() may see it, in eval mode; a training batch in train mode
    model.train(batch > 1)
    with torch.no_grad():
        out = forward(model, name, torch.randn(batch, *IMAGE))
    if isinstance(out, torch.Tensor) and tuple(out.shape) != (batch, 10):
        raise CheckFailed(shape_problem(name, tuple(out.shape), batch))
    expect_tensor(out, f"{name}.forward", (batch, 10))


@pytest.mark.parametrize("name", MODELS)
def test_returns_raw_logits_not_probabilities(submission, name):
    """returns raw logits, not probabilities"""
    model = build(submission, name).eval()
    with torch.no_grad():
        out = forward(model, name, torch.randn(16, *IMAGE))
    out = expect_tensor(out, f"{name}.forward")
    if tuple(out.shape) != (16, 10):
        raise CheckFailed(shape_problem(name, tuple(out.shape), 16))
    problem = probability_problem(name, out)
    expect(problem is None, problem or "")


def test_student_fits_the_budget(request, submission):
    """the Student has at most 25,000 parameters"""
    student = build(submission, "Student")
    count = parameter_count(student)
    request.node.learnkd_output = f"    Student: {count:,} parameters, {size_kb(student):.1f} KB saved"
    expect(count <= STUDENT_BUDGET, over_budget_problem(student, count))
    expect(count > 0, "your Student has no parameters: build its layers in __init__ and assign them to self "
                      "(self.conv = nn.Conv2d(...)), so that PyTorch registers them.")


def test_student_is_10x_smaller_than_the_teacher(request, submission):
    """the Student has at least 10x fewer parameters than the Teacher"""
    teacher, student = build(submission, "Teacher"), build(submission, "Student")
    t, s = parameter_count(teacher), parameter_count(student)
    expect(s > 0, "your Student has no parameters: build its layers in __init__ and assign them to self.")
    request.node.learnkd_output = (f"    Teacher: {t:,} parameters, {size_kb(teacher):.1f} KB; Student: {s:,} "
                                   f"parameters, {size_kb(student):.1f} KB ({t / s:.0f}x smaller)")
    expect(t >= RATIO * s, ratio_problem(t, s))


class Budgeted:
    """Batches that stop when a time budget is spent; ``used`` counts the batches given out."""

    def __init__(self, batches: Batches, seconds: float):
        self.batches, self.seconds, self.used = batches, seconds, 0
        self.cut = False

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        start = time.perf_counter()
        for batch in self.batches:
            if time.perf_counter() - start > self.seconds:
                self.cut = True
                return
            self.used += 1
            yield batch


def untrainable(model, name: str, x, err: RuntimeError) -> BaseException:
    """Why training ``model`` raised ``err``: a known shape mistake, or the error itself."""
    problem = runtime_problem(name, err, x.shape[0])
    if problem is None:
        with torch.no_grad():
            try:
                out = model.eval()(x)
            except Exception:
                out = None
        if isinstance(out, torch.Tensor) and tuple(out.shape) != (x.shape[0], 10):
            problem = shape_problem(name, tuple(out.shape), x.shape[0])
    if problem is None:
        return err
    return CheckFailed(f"your {name} cannot be trained: {problem}").with_traceback(err.__traceback__)


@pytest.mark.parametrize("name", MODELS)
def test_learns_from_a_short_training(request, submission, reference, options, name):
    """learns: one epoch on 2,048 MNIST images takes it past 50% accuracy"""
    x, y = load_mnist("train", options.data_dir, limit=FLOOR_IMAGES + HELD_OUT)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        model = build(submission, name)
        loader = Budgeted(Batches(x[:FLOOR_IMAGES], y[:FLOOR_IMAGES], FLOOR_BATCH, shuffle=True, seed=options.seed),
                          TRAINING_BUDGET_S)
        untrained = copy.deepcopy(model)
        try:
            reference.train.train_model(model, loader, epochs=1, lr=FLOOR_LR)
        except RuntimeError as err:
            raise untrainable(untrained, name, x[:FLOOR_BATCH], err) from None
    accuracy = reference.evaluate.evaluate(model, Batches(x[FLOOR_IMAGES:], y[FLOOR_IMAGES:], HELD_OUT))
    images = min(loader.used * FLOOR_BATCH, FLOOR_IMAGES)
    request.node.learnkd_output = (f"    {name}: {accuracy:.1%} on {HELD_OUT} held-out images after 1 epoch on "
                                   f"{images:,} images")
    if accuracy >= ACCURACY_FLOOR:
        return
    head = (f"your {name}, trained for 1 epoch on {images:,} MNIST images with the reference train_model "
            f"(lr={FLOOR_LR:g}), reached {accuracy:.1%} on {HELD_OUT} others; it needs {ACCURACY_FLOOR:.0%} "
            "(the reference models reach about 90%, chance is 10%)")
    if loader.cut:
        head += (f"; it was so slow that training stopped after {TRAINING_BUDGET_S:g} s, at {loader.used} of "
                 f"{len(loader)} batches")
    model.eval()
    probe = x[:8]
    with torch.no_grad():
        out = model(probe)
    problem = (pooling_problem(name, model, probe) or probability_problem(name, out)
               or last_layer_problem(name, model, probe))
    raise CheckFailed(f"{head}. {problem}" if problem else
                      f"{head}. Give it convolutions that shrink the image while adding channels (28 -> 14 -> 7), "
                      "then nn.Flatten() and Linear layers, with a ReLU after each layer but the last "
                      "(learnkd hint models).")
