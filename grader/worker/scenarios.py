"""What the worker builds around a learner's function when the judge asks: fixed models and data.

Nothing here is an answer to an exercise; the judge imports the same classes to compute, in its own
process, what a correct function would return on them.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn

CLASSES = 10
MEAN, STD = 0.1307, 0.3081  # pixel mean and std of the MNIST training set (scaled to [0, 1])


class Lookup(nn.Module):
    """A "model" whose logits are the first 10 pixels of each image (a one-hot row the judge sets).

    Its weight multiplies the logits by 1 and requires a gradient, so running it with gradient
    tracking on builds a graph; with ``dropout`` it drops logits in training mode.
    """

    def __init__(self, dropout: float = 0.0):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(x[:, 0, 0, :CLASSES] * self.scale)  # (B, 10)


def watch(model: nn.Module) -> list[tuple[bool, bool]]:
    """(training, grad enabled) at each forward call of ``model``, appended as the calls happen."""
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append((module.training, torch.is_grad_enabled())))
    return calls


def normalise(images: Tensor) -> Tensor:
    """uint8 ``(N, 28, 28)`` -> float32 ``(N, 1, 28, 28)`` scaled to [0, 1], then standardised."""
    x = images.float()
    return x.div_(255.0).sub_(MEAN).div_(STD).unsqueeze(1)


class Batches:
    """An iterable of ``(x, y)`` batches over tensors held in memory: MNIST's fast path.

    Each pass over it is one epoch. With ``shuffle=True`` every epoch has a new order drawn from a
    generator seeded once with ``seed``, so a run is reproducible and epochs still differ. The lab's
    pipeline uses it too (``grader.lab.data.Batches`` is this class).
    """

    def __init__(self, x: Tensor, y: Tensor, batch_size: int = 128, shuffle: bool = False, seed: int = 0,
                 device: str | torch.device = "cpu"):
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} and {len(y)}")
        self.x, self.y = x.to(device), y.to(device)
        self.batch_size, self.shuffle = batch_size, shuffle
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch_size)  # ceil: the last batch may be partial

    def __iter__(self):
        n = len(self.x)
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.x.device)
            for start in range(0, n, self.batch_size):
                idx = order[start:start + self.batch_size]
                yield self.x[idx], self.y[idx]
        else:
            for start in range(0, n, self.batch_size):
                yield self.x[start:start + self.batch_size], self.y[start:start + self.batch_size]


class Budgeted:
    """Batches that stop when a time budget is spent; ``used`` counts the batches given out."""

    def __init__(self, batches: Batches, seconds: float):
        self.batches, self.seconds, self.used, self.cut = batches, seconds, 0, False

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self):
        start = time.perf_counter()
        for batch in self.batches:
            if time.perf_counter() - start > self.seconds:
                self.cut = True
                return
            self.used += 1
            yield batch


def fit(model: nn.Module, loader, lr: float) -> None:
    """One pass of plain Adam on cross-entropy: how the judge has a learner's model trained for the
    `models` checks, whatever the learner's own loop does."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for x, y in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()


class FloorNet(nn.Module):
    """The small CNN of the `train` topic's accuracy floor (task train.floor): the judge has it trained with
    the learner's train_model, so that only the loop is judged, not the learner's models. Not the exercise's
    Student: 3x3 convolutions with max pooling, (B, 1, 28, 28) -> (B, 6, 14, 14) -> (B, 12, 7, 7) -> 10 logits."""

    def __init__(self):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 12, kernel_size=3, padding=1), nn.BatchNorm2d(12), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(12 * 7 * 7, CLASSES))

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)
