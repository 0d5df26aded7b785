"""distill puts both models in train mode at every epoch: the teacher runs with dropout on and batch norm updating.

check: distill runs the teacher in eval mode
says: distill puts the teacher in train mode (teacher.train())
mistake: train.teacher_not_in_eval_mode
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
    history = []
    for _ in range(epochs):
        # both models take part in training
        student.train()
        teacher.train()
        total = 0.0
        for x, y in loader:
            with torch.no_grad():
                teacher_logits = teacher(x)
            loss = distillation_loss(student(x), teacher_logits, y, T=T, alpha=alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.append(total / len(loader))
    return history
