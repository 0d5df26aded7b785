"""Correct: distill calls teacher.eval() at the start of every epoch, beside student.train() (the teacher
is put in eval mode again each time, which is harmless); a per-batch loss list averaged with
statistics.fmean; the optimizer's zero_grad(set_to_none=True) after each step.
"""
import statistics

import torch
import torch.nn.functional as F

from .loss import distillation_loss


def train_model(model, loader, epochs=3, lr=1e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        model.train()
        losses = []
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        history.append(statistics.fmean(losses))
    return history


def distill(student, teacher, loader, epochs=3, T=2.0, alpha=0.7, lr=1e-3):
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        student.train()
        teacher.eval()
        losses = []
        for x, y in loader:
            with torch.no_grad():
                teacher_logits = teacher(x)
            loss = distillation_loss(student(x), teacher_logits, y, T=T, alpha=alpha)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
        history.append(statistics.fmean(losses))
    return history
