"""train_model never calls optimizer.step(): the gradients are computed and thrown away.

check: steps the optimizer once per batch [train_model]
says: never calls optimizer.step()
mistake: train.optimizer_steps
"""

import torch
import torch.nn.functional as F

from .loss import distillation_loss


def train_model(model, loader, epochs=3, lr=1e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        model.train()
        running = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            running += loss.item()
        history.append(running / len(loader))
    return history


def distill(student, teacher, loader, epochs=3, T=2.0, alpha=0.7, lr=1e-3):
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    teacher.eval()
    history = []
    for _ in range(epochs):
        student.train()
        running = 0.0
        for x, y in loader:
            with torch.no_grad():
                t = teacher(x)
            loss = distillation_loss(student(x), t, y, T=T, alpha=alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            running += loss.item()
        history.append(running / len(loader))
    return history
