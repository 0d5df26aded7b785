"""The loss diagnosis: each variant is recognised as itself, and no correct formulation as a mistake."""

from pathlib import Path

import pytest

from bank import load_module
from grader.diagnose import probe
from grader.diagnose.loss import (LOSS_MISTAKES, SOFT_TARGETS_MISTAKES, pairs, recognise_loss,
                                  recognise_soft_targets, shown_at)
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


def test_two_mistakes_read_as_one_sentence_each_after_first_and_second():
    [both] = [m for m in pairs(LOSS_MISTAKES) if m.name == "no T**2 + alpha swapped"]
    assert "First: the soft term is missing its T**2 factor" in both.says
    assert "Second: alpha weighs the wrong term" in both.says
    [both] = [m for m in pairs(LOSS_MISTAKES) if m.name == "probabilities into kl_div + alpha swapped"]
    assert "First: F.kl_div got the student's probabilities" in both.says  # a name keeps its capital


def test_with_alpha_zero_no_mistake_of_the_kl_term_is_named():
    import torch

    s, t, y = torch.randn(8, 10) * 3, torch.randn(8, 10) * 3, torch.randint(0, 10, (8,))
    at_zero, at_half = probe(s, t, y, T=4.0, alpha=0.0), probe(s, t, y, T=4.0, alpha=0.5)
    ref = reference.distillation_loss
    [both] = [m for m in pairs(LOSS_MISTAKES) if m.name == "KL order + T in hard term"]
    assert shown_at(both, ref, at_zero).name == "T in hard term"
    assert shown_at(both, ref, at_half) == both
    kl_only = next(m for m in LOSS_MISTAKES if m.name == "KL order")
    assert shown_at(kl_only, ref, at_zero) is None and shown_at(kl_only, ref, at_half) == kl_only
    alpha_swapped = next(m for m in LOSS_MISTAKES if m.name == "alpha swapped")
    assert shown_at(alpha_swapped, ref, at_zero) == alpha_swapped
