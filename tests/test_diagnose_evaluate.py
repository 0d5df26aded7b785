"""The evaluate diagnosis: its data tell the variants apart, and no correct formulation is named a mistake."""

from pathlib import Path

import pytest

from bank import load_module
from grader.diagnose.evaluate import EVALUATE_MISTAKES, PARTIAL, Lookup, exact_fraction, loader, recognise_evaluate
from grader.worker.scenarios import watch
from solutions.evaluate import evaluate as reference

pytestmark = pytest.mark.usefixtures("one_thread")
CORRECT = sorted((Path(__file__).parent / "correct" / "evaluate").glob("*.py"))


def test_the_model_gets_exactly_the_planned_examples_right():
    assert reference(Lookup(), loader(PARTIAL)) == exact_fraction(PARTIAL) == 51 / 70


def test_the_hook_sees_training_mode_and_gradient_tracking():
    model = Lookup(dropout=0.5)
    calls = watch(model.dropout)
    reference(model, loader(PARTIAL))
    assert calls == [(False, False)] * len(PARTIAL)
    model.train()
    model(next(iter(loader(PARTIAL)))[0])
    assert calls[-1] == (True, True)


@pytest.mark.parametrize("mistake", EVALUATE_MISTAKES, ids=lambda m: m.name)
def test_each_variant_is_recognised_as_itself(mistake):
    assert recognise_evaluate(mistake.variant, reference) == mistake


@pytest.mark.parametrize("path", CORRECT, ids=lambda p: p.stem)
def test_no_correct_formulation_is_named_a_mistake(path):
    assert recognise_evaluate(load_module(path).evaluate, reference) is None
