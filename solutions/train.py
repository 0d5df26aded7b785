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
    ### BEGIN SOLUTION
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    # big steps first, fine ones at the end: the last epoch settles instead of bouncing around
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    history = []
    for _ in range(epochs):
        model.train()  # every epoch: someone may have called evaluate() in between
        total, count = 0.0, 0
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            optimizer.zero_grad()  # gradients accumulate in .grad unless cleared
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(y)
            count += len(y)
        history.append(total / count)
    return history
    ### END SOLUTION


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
    ### BEGIN SOLUTION
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs * len(loader))
    teacher.eval()  # dropout off, batch norm frozen: the teacher's targets must not be noisy
    history = []
    for _ in range(epochs):
        student.train()
        total, count = 0.0, 0
        for x, y in loader:
            with torch.no_grad():  # the teacher is a constant: no graph, no gradients
                teacher_logits = teacher(x)  # (B, 10)
            loss = distillation_loss(student(x), teacher_logits, y, T=T, alpha=alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            total += loss.item() * len(y)
            count += len(y)
        history.append(total / count)
    return history
    ### END SOLUTION
