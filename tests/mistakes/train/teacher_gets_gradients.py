"""distill computes the teacher's logits with autograd on, so backward() reaches the teacher.

check: distill leaves the teacher's weights unchanged and gives them no gradients
says: torch.no_grad()
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
            teacher_logits = teacher(x)
            student_logits = student(x)
            loss = distillation_loss(student_logits, teacher_logits, y, T=T, alpha=alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += loss.item()
        history.append(total / len(loader))
    return history
