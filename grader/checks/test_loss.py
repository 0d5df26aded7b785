"""Hidden checks of the topic `loss`."""

import pytest
import torch

from grader.checking import difference, expect, expect_tensor

pytestmark = pytest.mark.loss


def test_matches_the_reference(submission, reference):
    """matches the reference for T=4, alpha=0.7"""
    s, t, y = torch.randn(8, 10) * 3, torch.randn(8, 10) * 3, torch.randint(0, 10, (8,))
    got = expect_tensor(submission.loss.distillation_loss(s, t, y, T=4.0, alpha=0.7), "distillation_loss", ())
    want = reference.loss.distillation_loss(s, t, y, T=4.0, alpha=0.7)
    diff = difference(got, want)
    expect(diff is None, f"distillation_loss {diff}.")
