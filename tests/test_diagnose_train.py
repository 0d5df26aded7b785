"""The topic `train`'s record of a run: recorded by the worker (grader.worker.tracing), sent as plain data,
rebuilt and confirmed by the judge (grader.diagnose.train). Runs the worker's tasks in this process, with
every message through the wire as it would travel, and checks that a record that lies does not pass."""

import copy
import importlib.util
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import solutions.loss
from grader.diagnose import train as probes
from grader.worker import tasks
from in_process import roundtrip

pytestmark = pytest.mark.usefixtures("one_thread")
TESTS = Path(__file__).resolve().parent
LOOP = dict(epochs=2, batches=3, batch_size=8)
SEED = 0
TEACHER_HANDED_OVER_TRAINING = True  # as the checks hand it over (grader/checks/test_train.py)


def train_module(path: Path):
    """A bank file (or the reference) imported as a module of the solutions package, for its `from .loss`."""
    spec = importlib.util.spec_from_file_location(f"solutions.bank_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


REFERENCE = TESTS.parent / "solutions" / "train.py"


def record(path: Path, function: str, T: float = 5.0, alpha: float = 0.3, **shape):
    """The worker's plain record of one run of ``path``'s loop, as the judge receives it, and the oracle's calls."""
    shape = shape or LOOP
    oracle = probes.LossOracle(solutions.loss.distillation_loss)
    worker = SimpleNamespace(modules={"train": train_module(path), "loss": solutions.loss},
                             callback=lambda name, **payload: roundtrip(oracle(roundtrip(payload))))
    request = {"op": f"train.trace_{function}", "seed": SEED, "lr": 1e-3, "T": T, "alpha": alpha,
               "teacher_training": TEACHER_HANDED_OVER_TRAINING, **shape}
    with torch.random.fork_rng(devices=[]):
        plain = roundtrip(tasks.run(worker, request))
    return plain, oracle.calls, dict(T=T, alpha=alpha, **shape)


def rebuild(plain, calls, function: str, **kwargs):
    return probes.rebuild_trace(plain, function=function, seed=SEED, calls=calls,
                                teacher_training=TEACHER_HANDED_OVER_TRAINING, **kwargs)


ALL_DOUBTS = (probes.forward_doubt, probes.gradient_doubt, probes.step_doubt, probes.epochs_doubt)


@pytest.mark.parametrize("function", ["train_model", "distill"])
def test_the_reference_loop_reads_clean_and_is_confirmed(function):
    plain, calls, kwargs = record(REFERENCE, function)
    trace = rebuild(plain, calls, function, **kwargs)
    found = probes.loop_problems(trace) if function == "train_model" else probes.distill_problems(trace)
    assert found == []
    assert probes.history_problem(trace) is None
    for doubt in ALL_DOUBTS:
        assert doubt(trace) is None, doubt.__name__
    if function == "distill":
        assert len(calls) == LOOP["epochs"] * LOOP["batches"] == len(trace.of(probes.LossCall))
        assert probes.teacher_doubt(trace) is None and probes.same_batch_doubt(trace) is None
        # identity resolved in the worker and rebuilt here: each call holds the student forward's own output
        outs = [f.out for f in trace.forwards("student")]
        assert all(any(c.student_logits is o for o in outs) for c in trace.of(probes.LossCall))


@pytest.mark.parametrize("path", sorted((TESTS / "correct" / "train").glob("*.py")), ids=lambda p: p.stem)
def test_correct_variants_are_confirmed(path):
    for function in ("train_model", "distill"):
        plain, calls, kwargs = record(path, function)
        trace = rebuild(plain, calls, function, **kwargs)
        for doubt in (*ALL_DOUBTS, probes.teacher_doubt, probes.same_batch_doubt):
            if function == "train_model" and doubt in (probes.teacher_doubt, probes.same_batch_doubt):
                continue
            assert doubt(trace) is None, (function, doubt.__name__, doubt(trace))


def test_a_record_that_hides_accumulated_gradients_is_not_confirmed():
    plain, calls, kwargs = record(TESTS / "mistakes" / "train" / "grads_never_cleared.py", "train_model")
    assert probes.gradient_problem(rebuild(plain, calls, "train_model", **kwargs)) is not None
    forged = copy.deepcopy(plain)
    for event in forged["events"]:
        if event["kind"] == "backward":
            event["accumulated"] = event["fresh"]
    trace = rebuild(forged, calls, "train_model", **kwargs)
    assert probes.gradient_problem(trace) is None  # the reading believes it
    assert "not the gradient of the batch" in probes.gradient_doubt(trace)  # the judge does not


def test_a_record_with_invented_steps_is_not_confirmed():
    path = TESTS / "mistakes" / "train" / "step_once_per_epoch.py"
    plain, calls, kwargs = record(path, "distill")
    assert "once per epoch" in probes.step_problem(rebuild(plain, calls, "distill", **kwargs))
    forged = copy.deepcopy(plain)
    events, steps = [], [e for e in forged["events"] if e["kind"] == "step"]
    for event in forged["events"]:
        if event["kind"] == "step":
            continue
        events.append(event)
        if event["kind"] == "backward":
            events.append({**steps[0], "grad": event["fresh"]})
    forged["events"] = events
    trace = rebuild(forged, calls, "distill", **kwargs)
    assert probes.step_problem(trace) is None
    assert "did not change" in probes.step_doubt(trace)


def test_outputs_that_do_not_follow_from_the_weights_are_not_confirmed():
    plain, calls, kwargs = record(REFERENCE, "train_model")
    forged = copy.deepcopy(plain)
    forward = next(e for e in forged["events"] if e["kind"] == "forward")
    forward["out"] = forward["out"] * 0.5
    assert "is not what its weights give" in probes.forward_doubt(rebuild(forged, calls, "train_model", **kwargs))


def test_a_loss_history_is_recomputed_by_the_judge():
    plain, calls, kwargs = record(REFERENCE, "train_model")
    forged = copy.deepcopy(plain)
    forged["result"] = [v * 0.9 for v in plain["result"]]
    assert "recomputed" in probes.history_problem(rebuild(forged, calls, "train_model", **kwargs))


def test_the_agreement_comes_from_the_final_weights():
    shape = dict(epochs=2, batches=4, batch_size=16)
    plain, calls, kwargs = record(REFERENCE, "distill", T=2.0, alpha=1.0, **shape)
    trace = rebuild(plain, calls, "distill", **kwargs)
    with_teacher, with_labels, n = probes.agreement(trace)
    assert n == 64 and with_teacher >= 0.9 and with_labels <= 0.1
    plain["weight_after"] = plain["weight_before"]
    plain["bias_after"] = torch.zeros(10)
    assert probes.agreement(rebuild(plain, calls, "distill", **kwargs))[0] < 0.5


def test_the_batches_are_the_judges_own():
    plain, calls, kwargs = record(REFERENCE, "train_model")
    forged = copy.deepcopy(plain)
    for event in forged["events"]:
        if event["kind"] == "forward":
            event["x"] = torch.zeros_like(event["x"])
            event["out"] = torch.nn.functional.linear(event["x"].flatten(1), event["weight"], event["bias"])
    assert "not a batch the loader gave out" in probes.epochs_doubt(rebuild(forged, calls, "train_model", **kwargs))


@pytest.mark.parametrize("change, words", [
    (lambda p: p.update(events="no"), "no list of events"),
    (lambda p: p["events"][1].update(out=torch.zeros(3, 3)), "has shape"),
    (lambda p: p["events"][1].update(role="hacker"), "unknown model"),
    (lambda p: p["events"].append({"kind": "loss_call", "call": 0, "given": [], "student": None,
                                   "teacher": None}), "unknown kind 'loss_call'"),
    (lambda p: p["events"][0].update(batches=99), "gave out 99"),
    (lambda p: p.update(weight_after=torch.zeros(10, 784, dtype=torch.float64)), "float32"),
    (lambda p: p["events"].insert(0, {"kind": "explode"}), "unknown kind"),
], ids=["events", "shape", "role", "unanswered call", "batches", "dtype", "kind"])
def test_a_malformed_record_fails_with_a_clear_message(change, words):
    plain, calls, kwargs = record(REFERENCE, "train_model")
    change(plain)
    with pytest.raises(probes.MalformedTrace, match=words) as info:
        rebuild(plain, calls, "train_model", **kwargs)
    assert "malformed" in str(info.value)


def test_loss_calls_must_be_those_the_judge_answered():
    plain, calls, kwargs = record(REFERENCE, "distill")
    with pytest.raises(probes.MalformedTrace, match="did not answer"):
        rebuild(plain, calls[:-1], "distill", **kwargs)
    with pytest.raises(probes.MalformedTrace, match="6 loss calls were answered, 5 recorded"):
        rebuild({**plain, "events": [e for e in plain["events"] if e is not [
            e for e in plain["events"] if e["kind"] == "loss_call"][-1]]}, calls, "distill", **kwargs)


def test_the_oracle_gives_the_reference_value_and_gradients():
    oracle = probes.LossOracle(solutions.loss.distillation_loss)
    s, t, y = torch.randn(4, 10), torch.randn(4, 10), torch.randint(0, 10, (4,))
    answer = oracle({"student_logits": s, "teacher_logits": t, "labels": y, "T": torch.tensor(3.0), "alpha": 0.5})
    s_, t_ = s.clone().requires_grad_(True), t.clone().requires_grad_(True)
    value = solutions.loss.distillation_loss(s_, t_, y, T=3.0, alpha=0.5)
    value.backward()
    assert torch.allclose(answer["value"], value) and torch.allclose(answer["student_grad"], s_.grad)
    assert torch.allclose(answer["teacher_grad"], t_.grad)
    assert oracle.calls[0].T == 3.0 and oracle.calls[0].value == pytest.approx(float(value))


@pytest.mark.parametrize("message, words", [
    ({"student_logits": [1.0], "teacher_logits": torch.zeros(2, 10), "labels": torch.zeros(2).long()}, "float tensor"),
    ({"student_logits": torch.zeros(2, 10), "teacher_logits": torch.zeros(2, 10), "labels": torch.zeros(3).long()},
     "cannot be computed"),
    ({"student_logits": torch.zeros(2, 10), "teacher_logits": torch.zeros(2, 10), "labels": None}, "labels"),
], ids=["list", "shapes", "no labels"])
def test_the_oracle_refuses_what_the_reference_cannot_compute(message, words):
    oracle = probes.LossOracle(solutions.loss.distillation_loss)
    with pytest.raises((TypeError, ValueError), match=words):
        oracle({"T": 2.0, "alpha": 0.5, **message})
    assert oracle.calls == []


@pytest.mark.parametrize("path, words", [
    (TESTS / "mistakes" / "train" / "seed_lab.py", "distill never calls teacher.eval(): the teacher comes in train mode"),
    (TESTS / "mistakes" / "train" / "teacher_left_in_train_mode.py", "distill puts the teacher in train mode"),
    (TESTS / "correct" / "train" / "seed_lab_teacher_eval.py", None),
    (TESTS / "correct" / "train" / "teacher_eval_every_epoch.py", None),
    (REFERENCE, None),
], ids=["never", "train() every epoch", "eval() once", "eval() every epoch", "reference"])
def test_the_teacher_comes_in_train_mode_and_must_be_put_in_eval_mode(path, words):
    plain, calls, kwargs = record(path, "distill")
    problem = probes.teacher_mode_problem(rebuild(plain, calls, "distill", **kwargs))
    if words is None:
        assert problem is None
    else:
        assert words in problem and "dropout" in problem and "running statistics" in problem
        assert "torch.no_grad()" in problem and "Call teacher.eval() before the loop" in problem


def test_swapped_logits_at_the_loss_call_are_named_as_swapped_arguments(tmp_path):
    path = TESTS / "mistakes" / "train" / "loss_arguments_swapped.py"
    plain, calls, kwargs = record(path, "distill")
    problem = probes.same_batch_problem(rebuild(plain, calls, "distill", **kwargs))
    assert "distill passes the arguments of distillation_loss in the wrong order" in problem
    assert "call distillation_loss(student(x), teacher_logits, y, T=T, alpha=alpha)" in problem
    assert "student's own logits as the teacher's" not in problem
    by_name = tmp_path / "swapped_by_name.py"
    by_name.write_text(path.read_text().replace(
        "distillation_loss(teacher_logits, student(x), y,",
        "distillation_loss(student_logits=teacher_logits, teacher_logits=student(x), labels=y,"))
    plain, calls, kwargs = record(by_name, "distill")
    problem = probes.same_batch_problem(rebuild(plain, calls, "distill", **kwargs))
    assert "the teacher's logits as student_logits= and the student's logits as teacher_logits=" in problem
