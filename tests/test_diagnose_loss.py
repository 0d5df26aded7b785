"""The loss diagnosis: each variant is recognised as itself, and no correct formulation as a mistake."""

from pathlib import Path

import pytest

from bank import load_module
from grader.diagnose.loss import (LOSS_MISTAKES, SOFT_TARGETS_MISTAKES, pairs, recognise_loss,
                                  recognise_soft_targets)
from solutions import loss as reference

pytestmark = pytest.mark.usefixtures("one_thread")
CORRECT = sorted((Path(__file__).parent / "correct" / "loss").glob("*.py"))


@pytest.mark.parametrize("mistake", LOSS_MISTAKES, ids=lambda m: m.name)
def test_each_loss_variant_is_recognised_as_itself(mistake):
    assert recognise_loss(mistake.variant, reference.distillation_loss) == mistake


@pytest.mark.parametrize("mistake", SOFT_TARGETS_MISTAKES, ids=lambda m: m.name)
def test_each_soft_targets_variant_is_recognised_as_itself(mistake):
    assert recognise_soft_targets(mistake.variant, reference.soft_targets) == mistake


def test_two_mistakes_at_once_are_recognised_together():
    [both] = [m for m in pairs(LOSS_MISTAKES) if m.name == "no T**2 + reduction mean"]
    found = recognise_loss(both.variant, reference.distillation_loss)
    assert found.name == "no T**2 + reduction mean" and "T**2" in found.says and "batchmean" in found.says


@pytest.mark.parametrize("path", CORRECT, ids=lambda p: p.stem)
def test_no_correct_formulation_is_named_a_mistake(path):
    module = load_module(path)
    assert recognise_loss(module.distillation_loss, reference.distillation_loss) is None
    assert recognise_soft_targets(module.soft_targets, reference.soft_targets) is None
