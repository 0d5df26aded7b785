"""grader.diagnose: recognise names a mistake only when its variant matches the learner's code on every probe."""

import pytest
import torch

from grader.diagnose import Mistake, probe, recognise, same


def double(x):
    return 2 * x


def triple(x):
    return 3 * x


def right(x):
    return x + 1


MISTAKES = [Mistake("double", "You doubled it.", double), Mistake("triple", "You tripled it.", triple)]
PROBES = [probe(torch.tensor([1.0, 2.0])), probe(torch.tensor([-3.0]))]


def test_names_the_variant_that_matches_on_every_probe():
    assert recognise(lambda x: x * 3.0, MISTAKES, PROBES, correct=right).name == "triple"


def test_names_nothing_when_no_variant_matches_everywhere():
    # matches 'double' on the first probe only
    assert recognise(lambda x: 2 * x if x.numel() > 1 else x, MISTAKES, PROBES, correct=right) is None


def test_names_nothing_when_the_learner_is_right():
    assert recognise(right, MISTAKES + [Mistake("same", "", lambda x: x + 1)], PROBES, correct=right) is None


def test_skips_a_variant_that_the_probes_cannot_tell_from_the_correct_code():
    ones = [probe(torch.tensor([1.0]))]  # 2 * 1 == 1 + 1
    assert recognise(double, MISTAKES, ones, correct=right) is None


def test_names_nothing_when_the_learner_raises():
    def broken(x):
        raise RuntimeError("boom")
    assert recognise(broken, MISTAKES, PROBES) is None


def test_the_learner_gets_copies_of_the_inputs():
    x = torch.tensor([1.0, 2.0])

    def in_place(x):
        return x.mul_(2)
    assert recognise(in_place, MISTAKES, [probe(x)]).name == "double"
    assert torch.equal(x, torch.tensor([1.0, 2.0]))


@pytest.mark.parametrize("a, b, expected", [
    (1.0, torch.tensor(1.0), True),
    (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.00001]), True),
    (torch.tensor([1.0, 2.0]), torch.tensor([1.0, 2.1]), False),
    (torch.tensor([1.0]), torch.tensor(1.0), False),  # shapes differ
    (float("nan"), float("nan"), False),
    ((1.0, torch.ones(2)), (1.0, torch.ones(2)), True),
    ("a string", "a string", False),
])
def test_same(a, b, expected):
    assert same(a, b) is expected
