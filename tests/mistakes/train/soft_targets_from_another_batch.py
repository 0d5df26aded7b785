"""distill computes all the teacher's logits in one pass first; the loader reshuffles, so they belong to other images.

check: distill takes the soft targets from the teacher's logits for the student's own batch
says: separate pass over the loader
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
    # the teacher never changes, so compute its logits once and reuse them every epoch
    teacher.eval()
    with torch.no_grad():
        cached = [teacher(x) for x, _ in loader]
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    history = []
    for _ in range(epochs):
        student.train()
        total = 0.0
        for (x, y), teacher_logits in zip(loader, cached):
            loss = distillation_loss(student(x), teacher_logits, y, T=T, alpha=alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.append(total / len(loader))
    return history
