# Generated from solutions/train.py by `python -m grader.course.stubs` (course authors edit that file, not this one).
"""Topic `train`: training a model on hard labels, and distilling a student from a teacher."""

import torch
import torch.nn.functional as F
from torch import nn

from .loss import distillation_loss


def train_model(model: nn.Module, loader, epochs: int = 3, lr: float = 1e-3) -> list[float]:
    """Train ``model`` on hard labels with cross-entropy and Adam(lr).

    For each of ``epochs`` passes over ``loader``: put the model in train mode, and for every batch
    clear the gradients, compute the loss, back-propagate, and step the optimizer.
    Optional, worth a few tenths of a percent: lower the learning rate from lr to 0 along a cosine
    over all the steps (CosineAnnealingLR with T_max = epochs * len(loader), stepped every batch).

    Args:
        model: maps (B, 1, 28, 28) images to (B, 10) logits; trained in place.
        loader: an iterable of (x, y) batches (learnkd's Batches, a DataLoader, a list); iterating it
            again starts a new epoch. ``len(loader)`` is its number of batches per epoch: the hinted
            cosine schedule takes ``epochs * len(loader)`` steps.
        epochs: number of passes over the data.
        lr: Adam's learning rate.
    Returns:
        The mean training loss of each epoch (a list of ``epochs`` Python floats).
    """
    # TODO(train): one optimizer for the model, then the loop over epochs and batches.
    raise NotImplementedError("train: write train_model in exercises/train.py (stuck? learnkd hint train)")


def distill(student: nn.Module, teacher: nn.Module, loader, epochs: int = 3,
            T: float = 2.0, alpha: float = 0.7, lr: float = 1e-3) -> list[float]:
    """Train ``student`` to match a trained ``teacher`` with ``distillation_loss`` and Adam(lr).

    The teacher is frozen: eval mode, no gradients (compute its logits under torch.no_grad()),
    parameters unchanged. The student is in train mode. Each batch's soft targets come from the
    teacher's logits for that same batch ``x``; pass T and alpha on to ``distillation_loss``.
    The optional cosine schedule of ``train_model`` helps here too.

    Args:
        student: the model to train, in place.
        teacher: a trained model; only its outputs are used.
        loader: as in ``train_model``.
        epochs, lr: as in ``train_model``.
        T, alpha: temperature and soft-term weight of ``distillation_loss``.
    Returns:
        The mean distillation loss of each epoch (a list of ``epochs`` Python floats).
    """
    # TODO(train): freeze the teacher, then train the student on distillation_loss.
    raise NotImplementedError("train: write distill in exercises/train.py (stuck? learnkd hint train)")
