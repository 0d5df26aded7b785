"""Hidden checks of the topic `train`: train_model and distill.

The learner's loops run on probes (grader.diagnose.train): one-Linear-layer models on tiny synthetic
images, a loader that shuffles anew on every pass, hooks on every backward pass and optimizer step,
and the reference distillation_loss swapped in for the learner's, so that only the loop is judged.
Each run happens once per module (a fixture) and several checks read it. One check trains the
reference Student on a small MNIST subset with the learner's train_model.
"""

from __future__ import annotations

import numbers

import pytest
import torch
import torch._dynamo  # noqa: F401 (before the guard's snapshot: its import replaces torch.manual_seed, and the
#                      first optimizer a loop creates imports it)

from grader.checking import CheckFailed, expect
from grader.data import Batches, load_mnist
from grader.diagnose import train as probes
from grader.diagnose.train import (Trace, distill_problems, epochs_problem, gradient_problem, history_problem,
                                   loop_problems, losses_match, mode_problem, passed_on_problem, same_batch_problem,
                                   step_problem, teacher_change_problem, teacher_ignored_problem,
                                   teacher_mode_problem)

pytestmark = [pytest.mark.train, pytest.mark.usefixtures("one_thread")]

LR = 1e-3  # Adam's default: the seed lab's loops ignore the lr argument, so every run uses this one
# The probe runs: 2 epochs of 3 batches of 8 show accumulation, per-epoch mistakes and the epoch count.
LOOP = dict(epochs=2, batches=3, batch_size=8)
# T and alpha unlike the defaults (2.0, 0.7), so that "not passed on" shows.
T_PROBE, ALPHA_PROBE = 5.0, 0.3
# The mode the teacher is handed over in. The seed lab's distill loop (which must pass) never calls
# teacher.eval(): in its notebook the teacher was in eval mode after evaluate(), as it is in
# `learnkd check all`. So the teacher comes in eval mode, and distill fails when it switches it to train
# mode. True would also fail a distill that leaves a teacher in train mode as it found it.
TEACHER_HANDED_OVER_TRAINING = False
# Following a teacher: 2 epochs of 4 batches of 16 images of 10 synthetic classes. The reference loop
# (cosine schedule) and the seed lab's (constant lr) both reach 100% agreement; 90% leaves room.
FOLLOW = dict(epochs=2, batches=4, batch_size=16)
AGREEMENT_FLOOR = 0.9
# The accuracy floor: the reference Student trained with the learner's train_model for one epoch on
# 2,048 MNIST images (batches of 32, lr 1e-3), measured on the next 500. The reference loop reaches
# ~74% and the seed lab's constant-lr loop ~83%; a loop that never steps or never clears stays far below.
FLOOR_IMAGES, HELD_OUT, FLOOR_BATCH = 2048, 500, 32
ACCURACY_FLOOR = 0.55

# When a learner's function runs past the check's time limit once, the other runs of it fail at once.
_timed_out: dict[str, BaseException] = {}


def run_once(name: str, run):
    """``run()``, unless ``name`` already ran past the time limit: then that failure again, at once."""
    if name in _timed_out:
        raise _timed_out[name]
    try:
        return run()
    except BaseException as err:
        if type(err).__name__ == "Failed" and str(err).startswith("Timeout"):
            _timed_out[name] = err
        raise


def seeded_run(seed: int, run):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return run()


def trace_distill(submission, reference, options, T: float, alpha: float, **shape) -> Trace:
    train = submission.train
    return run_once("distill", lambda: seeded_run(options.seed, lambda: probes.trace_distill(
        train.distill, train, submission.modules.get("loss"), reference.loss.distillation_loss,
        T=T, alpha=alpha, lr=LR, seed=options.seed, teacher_training=TEACHER_HANDED_OVER_TRAINING, **shape)))


@pytest.fixture(scope="module")
def train_model_trace(submission, options) -> Trace:
    train_model = submission.train.train_model
    return run_once("train_model", lambda: seeded_run(options.seed, lambda: probes.trace_train_model(
        train_model, lr=LR, seed=options.seed, **LOOP)))


@pytest.fixture(scope="module")
def distill_trace(submission, reference, options) -> Trace:
    return trace_distill(submission, reference, options, T_PROBE, ALPHA_PROBE, **LOOP)


@pytest.fixture(scope="module")
def alpha_one_trace(submission, reference, options) -> Trace:
    return trace_distill(submission, reference, options, 2.0, 1.0, **FOLLOW)


@pytest.fixture(scope="module")
def alpha_zero_trace(submission, reference, options) -> Trace:
    return trace_distill(submission, reference, options, 2.0, 0.0, **FOLLOW)


FUNCTIONS = ["train_model", "distill"]


def loop_trace(request, function: str) -> Trace:
    return request.getfixturevalue(f"{function}_trace")


def first(*problems: str | None) -> str | None:
    return next((p for p in problems if p), None)


# ---------------------------------------------------------------------------------------------------
# Both loops


@pytest.mark.parametrize("function", FUNCTIONS)
def test_clears_the_gradients_every_step(request, function):
    """clears the gradients for every batch (no accumulation)"""
    trace = loop_trace(request, function)
    problem = gradient_problem(trace)
    expect(problem is None, problem or "")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_steps_the_optimizer_every_batch(request, function):
    """steps the optimizer once per batch"""
    trace = loop_trace(request, function)
    problem = step_problem(trace)
    expect(problem is None, problem or "")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_runs_every_epoch(request, function):
    """trains for `epochs` passes over the loader"""
    trace = loop_trace(request, function)
    problem = epochs_problem(trace)
    expect(problem is None, problem or "")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_trains_in_train_mode(request, function):
    """trains the model in train mode, even when it was handed over in eval mode"""
    trace = loop_trace(request, function)
    problem = mode_problem(trace, trace.trained)
    expect(problem is None, problem or "")


@pytest.mark.parametrize("function", FUNCTIONS)
def test_returns_the_mean_loss_of_each_epoch(request, function):
    """returns the mean loss of each epoch, as a list of floats"""
    trace = loop_trace(request, function)
    problem = history_problem(trace)
    expect(problem is None, problem or "")


# ---------------------------------------------------------------------------------------------------
# train_model


def test_train_model_reaches_an_accuracy_floor(request, submission, reference, options):
    """train_model trains a small CNN past an accuracy floor on 2,048 MNIST images"""
    train_model = submission.train.train_model
    x, y = load_mnist("train", options.data_dir, limit=FLOOR_IMAGES + HELD_OUT)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(options.seed)
        model = reference.models.Student()
        loader = Batches(x[:FLOOR_IMAGES], y[:FLOOR_IMAGES], FLOOR_BATCH, shuffle=True, seed=options.seed)
        run_once("train_model", lambda: train_model(model, loader, epochs=1, lr=LR))
    accuracy = reference.evaluate.evaluate(model, Batches(x[FLOOR_IMAGES:], y[FLOOR_IMAGES:], HELD_OUT))
    request.node.learnkd_output = (f"    the reference Student, trained with your train_model for 1 epoch on "
                                   f"{FLOOR_IMAGES:,} images: {accuracy:.1%} on {HELD_OUT} others")
    if accuracy >= ACCURACY_FLOOR:
        return
    head = (f"the reference Student trained with your train_model (1 epoch, {FLOOR_IMAGES:,} MNIST images, "
            f"lr={LR:g}) reached {accuracy:.1%} on {HELD_OUT} held-out images; a working loop reaches at least "
            f"{ACCURACY_FLOOR:.0%} (chance is 10%)")
    try:
        found = loop_problems(request.getfixturevalue("train_model_trace"))
    except Exception:  # the probe run failed: its own checks report why
        found = []
    raise CheckFailed(f"{head}. {found[0]}" if found else
                      f"{head}. Its loop passes the other checks, so look at what it feeds the optimizer: "
                      "torch.optim.Adam(model.parameters(), lr=lr), and the loss F.cross_entropy(model(x), y).")


# ---------------------------------------------------------------------------------------------------
# distill


def test_teacher_is_left_unchanged(distill_trace):
    """distill leaves the teacher's weights unchanged and gives them no gradients"""
    problem = teacher_change_problem(distill_trace)
    expect(problem is None, problem or "")


def test_teacher_runs_in_eval_mode(distill_trace):
    """distill runs the teacher in eval mode"""
    problem = teacher_mode_problem(distill_trace)
    expect(problem is None, problem or "")


def test_soft_targets_come_from_the_same_batch(distill_trace):
    """distill takes the soft targets from the teacher's logits for the student's own batch"""
    problem = same_batch_problem(distill_trace)
    expect(problem is None, problem or "")


def test_passes_T_and_alpha_on(distill_trace):
    """distill passes T and alpha on to distillation_loss"""
    trace = distill_trace
    problem = first(passed_on_problem(trace), teacher_ignored_problem(trace))
    expect(problem is None, problem or "")
    if trace.of(probes.LossCall):
        return
    # distillation_loss was not called through its name: the returned losses must be its values
    expect(losses_match(trace),
           f"distill(..., T={T_PROBE:g}, alpha={ALPHA_PROBE:g}) does not call distillation_loss (imported with "
           f"`from .loss import distillation_loss`), and the losses it returned, {_shown(trace.result)}, are not "
           f"those of distillation_loss with T={T_PROBE:g} and alpha={ALPHA_PROBE:g} on its batches "
           f"({_shown(_means(trace))}): compute the loss with distillation_loss(student_logits, teacher_logits, y, "
           "T=T, alpha=alpha).")


def _means(trace: Trace) -> list[float]:
    return [sum(g) / len(g) for g in probes.per_batch_losses(trace) if g]


def _shown(values) -> str:
    if isinstance(values, (list, tuple)) and all(isinstance(v, numbers.Real) for v in values):
        return "[" + ", ".join(f"{float(v):.4g}" for v in values) + "]"
    return "None" if values is None else type(values).__name__


def _follow_message(trace: Trace, want: str) -> str | None:
    with_teacher, with_labels, n = probes.agreement(trace)
    score = with_teacher if want == "teacher" else with_labels
    if score >= AGREEMENT_FLOOR:
        return None
    alpha = trace.alpha
    what = ("with alpha=1 the loss is the soft term alone, so the student should learn the teacher's answers"
            if want == "teacher" else
            "with alpha=0 the loss is the cross-entropy with the labels alone, so the student should learn the "
            "labels and ignore the teacher")
    head = (f"after distill(..., T={trace.T:g}, alpha={alpha:g}) on {n} images of 10 easy synthetic classes, "
            f"whose teacher answers class c + 1 when the label is c, the student agreed with the teacher on "
            f"{with_teacher:.0%} of them and with the labels on {with_labels:.0%}; {what} "
            f"(at least {AGREEMENT_FLOOR:.0%})")
    found = distill_problems(trace)
    return f"{head}. {found[0]}" if found else (
        f"{head}. Pass alpha on to distillation_loss and train on its value for every batch.")


def test_follows_the_teacher_when_alpha_is_one(alpha_one_trace):
    """with alpha=1 the student follows a teacher that disagrees with the labels"""
    problem = _follow_message(alpha_one_trace, "teacher")
    expect(problem is None, problem or "")


def test_ignores_the_teacher_when_alpha_is_zero(alpha_zero_trace):
    """with alpha=0 the student learns the labels and ignores the teacher"""
    problem = _follow_message(alpha_zero_trace, "labels")
    expect(problem is None, problem or "")
