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
        ### BEGIN SOLUTION
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, kernel_size=5, stride=2, padding=2),  # (B, 16, 14, 14)
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 32, kernel_size=3, padding=1),  # (B, 32, 14, 14)
            nn.MaxPool2d(2),  # (B, 32, 7, 7); pooling before the ReLU gives the same result on 4x fewer values
            nn.BatchNorm2d(32),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, 32 * 7 * 7)
            nn.Dropout(0.25),
            nn.Linear(32 * 7 * 7, 256),  # most of the Teacher's ~410,000 parameters live here
            nn.ReLU(),
            nn.Linear(256, 10),  # (B, 10) logits
        )
        ### END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, 28, 28) images -> (B, 10) logits."""
        # TODO(models): run x through the layers; return the logits, not probabilities.
        ### BEGIN SOLUTION
        return self.classifier(self.features(x))
        ### END SOLUTION


class Student(nn.Module):
    """The tiny model: at most 25,000 parameters and at least 10x fewer than the Teacher.

    Should reach about 98% on MNIST on its own. The same recipe as the Teacher, much narrower
    (8 and 16 channels), with no hidden Linear layer: the flattened features go straight to the
    10 logits. Most of a small CNN's parameters sit in its Linear layers.
    """

    def __init__(self):
        super().__init__()
        # TODO(models): build the Student's layers within the parameter budget.
        ### BEGIN SOLUTION
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, kernel_size=5, stride=2, padding=2),  # (B, 8, 14, 14)
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, 16, kernel_size=3, stride=2, padding=1),  # (B, 16, 7, 7)
            nn.BatchNorm2d(16),
            nn.ReLU(),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),  # (B, 16 * 7 * 7)
            nn.Linear(16 * 7 * 7, 10),  # (B, 10) logits; 7,850 of the Student's ~9,300 parameters
        )
        ### END SOLUTION

    def forward(self, x: Tensor) -> Tensor:
        """(B, 1, 28, 28) images -> (B, 10) logits."""
        # TODO(models): run x through the layers; return the logits, not probabilities.
        ### BEGIN SOLUTION
        return self.classifier(self.features(x))
        ### END SOLUTION
