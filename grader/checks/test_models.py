"""Hidden checks of the topic `models`: the Teacher and the Student.

The learner's models are built and run in the worker. Output shapes come from running them there on
the judge's random images; parameter counts and accuracies are the judge's own, measured on the
models' exported graphs (grader.grading.graph), which it runs itself. Whether a model can learn is
checked by training it briefly on real MNIST with a plain Adam loop in the worker (so a bug in the
learner's loop cannot fail this topic) and measuring it, in the judge, on held-out images the worker
never sees.
"""

from __future__ import annotations

import pytest
import torch

from grader.grading.checking import CheckFailed, expect, expect_tensor
from grader.lab.data import load_raw, normalise, resolve_data_dir
from grader.diagnose.models import (RATIO, STUDENT_BUDGET, last_layer_problem, over_budget_problem, pooling_problem,
                                    probability_problem, ratio_problem, runtime_problem, shape_problem)
from grader.grading.graph import Graph, GraphError, accuracy
from grader.grading.remote import LearnerError

pytestmark = [pytest.mark.models, pytest.mark.usefixtures("one_thread")]

MODELS = ["Teacher", "Student"]
IMAGE = (1, 28, 28)
# The short training: one epoch of plain Adam (grader.worker.scenarios.fit) on 2,048 MNIST images (batches
# of 32, lr 3e-3), measured on the next 500. The reference Teacher reaches ~93% and Student ~86%; models
# that pool the image down to one number per channel stay under 30%.
FLOOR_IMAGES, HELD_OUT, FLOOR_BATCH, FLOOR_LR = 2048, 500, 32, 3e-3
ACCURACY_FLOOR = 0.5
# A model slow enough to pass this on a busy machine still trains on part of the images: the training
# stops after this many seconds and is judged on what it learnt by then.
TRAINING_BUDGET_S = 12.0
EXPORT_TIMEOUT_S = 120  # torch.export of a model: seconds the first time on a busy 2-core machine


def model_error(name: str, err: LearnerError, batch: int) -> BaseException:
    """A shape error in a Linear layer, explained; other errors reach the learner as they are."""
    problem = runtime_problem(name, err.message, batch) if err.type == "RuntimeError" else None
    if problem is None:
        return err
    failed = CheckFailed(problem)
    failed.__cause__ = err  # its frames point at the learner's line
    return failed


def forward(submission, name: str, x: torch.Tensor, train: bool = False):
    """``name()(x)`` in the worker, under no_grad; what it returned."""
    try:
        reply = submission.ask({"op": "model.forward", "name": name, "x": x, "train": train},
                               key=f"models.{name}")
    except LearnerError as err:
        raise model_error(name, err, len(x)) from err
    expect(isinstance(reply, dict) and reply.get("module") is True,
           f"{name}() should build a torch.nn.Module, but it is a {reply.get('type') if isinstance(reply, dict) else '?'}: "
           "subclass nn.Module.")
    return reply.get("out")


def export(submission, name: str, batch: int, handle: str | None = None) -> Graph:
    """The model (new, or trained and kept under ``handle``) as a graph the judge runs and counts."""
    try:
        reply = submission.ask({"op": "model.export", "name": name, "handle": handle, "batch": batch},
                               key=f"models.{name}.export", timeout=EXPORT_TIMEOUT_S)
    except LearnerError as err:
        problem = model_error(name, err, batch)
        if problem is not err:
            raise problem from err
        raise CheckFailed(f"your {name} could not be exported with torch.export, which the grader uses to count "
                          f"and run your model outside your code: {err.type}: {(err.message.splitlines() or [''])[0]}. "
                          "Keep forward() to torch operations on its input (no Python conditions on tensor values, "
                          "no .item() or numpy).") from err
    expect(isinstance(reply, dict) and reply.get("module") is True,
           f"{name}() should build a torch.nn.Module: subclass nn.Module.")
    try:
        return Graph(reply.get("graph"), what=f"your {name}")
    except GraphError as err:
        raise CheckFailed(str(err)) from None


def layers(submission, name: str, x: torch.Tensor, handle: str | None = None) -> dict:
    """For messages: the worker's report of the model's layers (what ran, shapes, where the parameters are)."""
    try:
        return submission.ask({"op": "model.layers", "name": name, "handle": handle, "x": x})
    except Exception:  # the report only words a message
        return {}


@pytest.mark.parametrize("batch", [1, 16], ids=lambda b: f"B={b}")
@pytest.mark.parametrize("name", MODELS)
def test_maps_a_batch_to_logits_of_shape_B_by_10(submission, name, batch):
    """maps a batch of B images (B, 1, 28, 28) to (B, 10) logits"""
    # B = 1 as evaluate() may see it, in eval mode; a training batch in train mode
    out = forward(submission, name, torch.randn(batch, *IMAGE), train=batch > 1)
    if isinstance(out, torch.Tensor) and tuple(out.shape) != (batch, 10):
        raise CheckFailed(shape_problem(name, tuple(out.shape), batch))
    expect_tensor(out, f"{name}.forward", (batch, 10))


@pytest.mark.parametrize("name", MODELS)
def test_returns_raw_logits_not_probabilities(submission, name):
    """returns raw logits, not probabilities"""
    out = expect_tensor(forward(submission, name, torch.randn(16, *IMAGE)), f"{name}.forward")
    if tuple(out.shape) != (16, 10):
        raise CheckFailed(shape_problem(name, tuple(out.shape), 16))
    problem = probability_problem(name, out)
    expect(problem is None, problem or "")


def test_student_fits_the_budget(request, submission):
    """the Student has at most 25,000 parameters"""
    student = export(submission, "Student", batch=1)
    count = student.weights()
    request.node.learnkd_output = f"    Student: {count:,} parameters, {student.size_kb():.1f} KB of weights"
    expect(count > 0, "your Student has no parameters: build its layers in __init__ and assign them to self "
                      "(self.conv = nn.Conv2d(...)), so that PyTorch registers them.")
    if count > STUDENT_BUDGET:
        raise CheckFailed(over_budget_problem(layers(submission, "Student", torch.zeros(1, *IMAGE)), count))


def test_student_is_10x_smaller_than_the_teacher(request, submission):
    """the Student has at least 10x fewer parameters than the Teacher"""
    teacher, student = export(submission, "Teacher", batch=1), export(submission, "Student", batch=1)
    t, s = teacher.weights(), student.weights()
    expect(s > 0, "your Student has no parameters: build its layers in __init__ and assign them to self.")
    request.node.learnkd_output = (f"    Teacher: {t:,} parameters, {teacher.size_kb():.1f} KB; Student: {s:,} "
                                   f"parameters, {student.size_kb():.1f} KB ({t / s:.0f}x smaller)")
    expect(t >= RATIO * s, ratio_problem(t, s))


@pytest.mark.parametrize("name", MODELS)
def test_learns_from_a_short_training(request, submission, options, name):
    """learns: one epoch on 2,048 MNIST images takes it past 50% accuracy"""
    root, how = resolve_data_dir(options.data_dir)
    images, labels = load_raw("train", root.resolve(), how)
    handle = f"short-{name}"
    try:
        fit = submission.ask({"op": "model.fit", "name": name, "handle": handle, "images": images[:FLOOR_IMAGES],
                              "labels": labels[:FLOOR_IMAGES], "batch_size": FLOOR_BATCH, "lr": FLOOR_LR,
                              "budget_s": TRAINING_BUDGET_S, "seed": options.seed}, key=f"models.{name}.fit",
                             timeout=TRAINING_BUDGET_S + 60)
    except LearnerError as err:
        problem = model_error(name, err, FLOOR_BATCH)
        if problem is err:
            out = forward(submission, name, torch.randn(FLOOR_BATCH, *IMAGE))
            if isinstance(out, torch.Tensor) and tuple(out.shape) != (FLOOR_BATCH, 10):
                problem = CheckFailed(f"your {name} cannot be trained: "
                                      + shape_problem(name, tuple(out.shape), FLOOR_BATCH))
                problem.__cause__ = err
        raise problem from err
    held_x = normalise(images[FLOOR_IMAGES:FLOOR_IMAGES + HELD_OUT])
    held_y = labels[FLOOR_IMAGES:FLOOR_IMAGES + HELD_OUT]
    graph = export(submission, name, batch=HELD_OUT, handle=handle)
    try:
        logits = graph(held_x)  # the judge runs the trained model itself, on images the worker never saw
    except GraphError as err:
        raise CheckFailed(str(err)) from None
    score = accuracy(logits, held_y)
    used = fit.get("used") if isinstance(fit, dict) and type(fit.get("used")) is int else 0
    images_seen = min(used * FLOOR_BATCH, FLOOR_IMAGES)
    request.node.learnkd_output = (f"    {name}: {score:.1%} on {HELD_OUT} held-out images after 1 epoch on "
                                   f"{images_seen:,} images")
    if score >= ACCURACY_FLOOR:
        return
    head = (f"your {name}, trained for 1 epoch on {images_seen:,} MNIST images with plain Adam "
            f"(lr={FLOOR_LR:g}), reached {score:.1%} on {HELD_OUT} others; it needs {ACCURACY_FLOOR:.0%} "
            "(the reference models reach about 90%, chance is 10%)")
    if isinstance(fit, dict) and fit.get("cut") is True:
        head += (f"; it was so slow that training stopped after {TRAINING_BUDGET_S:g} s, at {used} of "
                 f"{fit.get('batches')} batches")
    report = layers(submission, name, held_x[:8], handle=handle)
    problem = (pooling_problem(name, report) or probability_problem(name, logits[:8])
               or last_layer_problem(name, report))
    raise CheckFailed(f"{head}. {problem}" if problem else
                      f"{head}. Give it convolutions that shrink the image while adding channels (28 -> 14 -> 7), "
                      "then nn.Flatten() and Linear layers, with a ReLU after each layer but the last "
                      "(learnkd hint models).")
