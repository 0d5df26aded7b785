"""distill calls zero_grad() after backward() and before step(), so every step sees zero gradients.

check: clears the gradients for every batch (no accumulation) [distill]
says: between loss.backward() and optimizer.step()
mistake: train.gradients_cleared_before_step
"""

import torch
import torch.nn.functional as F

from .loss import distillation_loss


def train_model(model, loader, epochs=3, lr=1e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        model.train()
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.append(total / len(loader))
    return history


def distill(student, teacher, loader, epochs=3, T=2.0, alpha=0.7, lr=1e-3):
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    teacher.eval()
    history = []
    for _ in range(epochs):
        student.train()
        total = 0.0
        for x, y in loader:
            with torch.no_grad():
                soft = teacher(x)
            loss = distillation_loss(student(x), soft, y, T=T, alpha=alpha)
            loss.backward()
            optimizer.zero_grad()
            optimizer.step()
            total += loss.item()
        history.append(total / len(loader))
    return history
