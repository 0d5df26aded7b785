"""Correct, written differently: distill computes the distillation loss itself (the same formula)
instead of calling distillation_loss, with a one-cycle schedule stepped every batch, and
inference_mode-free no_grad teacher; train_model uses nn.CrossEntropyLoss and returns a tuple-free list.
"""

import torch
import torch.nn.functional as F
from torch import nn


def train_model(model, loader, epochs=3, lr=1e-3):
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        model.train()
        losses = []
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
        history.append(sum(losses) / len(losses))
    return history


def distill(student, teacher, loader, epochs=3, T=2.0, alpha=0.7, lr=1e-3):
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * len(loader))
    teacher.eval()
    history = []
    for _ in range(epochs):
        student.train()
        losses = []
        for x, y in loader:
            with torch.no_grad():
                p_teacher = F.softmax(teacher(x) / T, dim=1)
            logits = student(x)
            soft = F.kl_div(F.log_softmax(logits / T, dim=1), p_teacher, reduction="batchmean") * T * T
            hard = F.cross_entropy(logits, y)
            loss = alpha * soft + (1 - alpha) * hard
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
        history.append(sum(losses) / len(losses))
    return history
