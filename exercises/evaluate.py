# Generated from solutions/evaluate.py by `python -m grader.course.stubs` (course authors edit that file, not this one).
"""Topic `evaluate`: the accuracy of a model on a data set."""

import torch
from torch import nn


def evaluate(model: nn.Module, loader) -> float:
    """The fraction of examples whose predicted class (the argmax of the logits) equals the label.

    Count correct predictions over every example and divide by the number of examples: the last
    batch may be smaller than the others, so the mean of per-batch accuracies is not the same.
    Put the model in eval mode (dropout off, batch norm on its running statistics) and build no
    autograd graph (torch.no_grad()): evaluation needs no gradients.

    Args:
        model: maps (B, 1, 28, 28) images to (B, 10) logits.
        loader: any iterable of (x, y) batches: x (B, 1, 28, 28), y (B,) class indices.
    Returns:
        A Python float in [0, 1], e.g. 0.9912.
    """
    # TODO(evaluate): eval mode, no gradients, count correct argmax predictions over all examples.
    raise NotImplementedError("evaluate: write evaluate in exercises/evaluate.py (stuck? learnkd hint evaluate)")
