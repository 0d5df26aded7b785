# Generated from solutions/models.py by `python -m grader.course.stubs` (course authors edit that file, not this one).
"""Topic `models`: a big Teacher CNN and a tiny Student CNN for MNIST.

Both take (B, 1, 28, 28) normalised images and return (B, 10) raw logits (no softmax: the losses
apply it). The Student has at most 25,000 parameters and at least 10x fewer than the Teacher.
"""

from torch import Tensor, nn


class Teacher(nn.Module):
    """The big model: accurate, slow, and the source of the soft targets.

    Should reach about 99% test accuracy on MNIST in 2 epochs of `train_model`. A CNN that does:
    convolutions that halve the image (28 -> 14 -> 7, by stride 2 or max pooling) while widening it
    (1 -> 16 -> 32 channels), then flatten and a hidden Linear layer of a few hundred units. Avoid global
    average pooling right after the convolutions: it throws away where the strokes are (a Teacher built
    that way reaches about 72%).
    """

    def __init__(self):
        super().__init__()
        # TODO(models): build the Teacher's layers; about 400,000 parameters is plenty.
        raise NotImplementedError("models: write Teacher.__init__ in exercises/models.py (stuck? learnkd hint models)")

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, 28, 28) images -> (B, 10) logits."""
        # TODO(models): run x through the layers; return the logits, not probabilities.
        raise NotImplementedError("models: write Teacher.forward in exercises/models.py (stuck? learnkd hint models)")


class Student(nn.Module):
    """The tiny model: at most 25,000 parameters and at least 10x fewer than the Teacher.

    Should reach about 98% on MNIST on its own. The same recipe as the Teacher, much narrower
    (8 and 16 channels), with no hidden Linear layer: the flattened features go straight to the
    10 logits. Most of a small CNN's parameters sit in its Linear layers.
    """

    def __init__(self):
        super().__init__()
        # TODO(models): build the Student's layers within the parameter budget.
        raise NotImplementedError("models: write Student.__init__ in exercises/models.py (stuck? learnkd hint models)")

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, 28, 28) images -> (B, 10) logits."""
        # TODO(models): run x through the layers; return the logits, not probabilities.
        raise NotImplementedError("models: write Student.forward in exercises/models.py (stuck? learnkd hint models)")
