"""Correct: the seed lab's loops (tests/mistakes/train/seed_lab.py) with teacher.eval() called once, before
the distillation loop: constant-lr Adam with its default lr (the lr argument unused), no scheduler,
model.train() once before the epochs. The weakest correct submission the floors of `learnkd check all`
must let through (benchmarks/seeds_check_all.py --path).
"""

import torch
import torch.nn.functional as F

from .loss import distillation_loss


def train_model(model, loader, epochs=3, lr=1e-3):
    model.train()
    opt = torch.optim.Adam(model.parameters())
    history = []
    for epoch in range(epochs):
        total = 0.0
        for x, y in loader:
            out = model(x)
            loss = F.cross_entropy(out, y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        history.append(total / len(loader))
    return history


def distill(student, teacher, loader, epochs=3, T=2.0, alpha=0.7, lr=1e-3):
    teacher.eval()  # it comes in train mode, as train_model leaves it
    opt = torch.optim.Adam(student.parameters())
    history = []
    for epoch in range(epochs):
        student.train()
        total = 0.0
        for x, y in loader:
            with torch.no_grad():
                teacher_logits = teacher(x)
            student_logits = student(x)
            loss = distillation_loss(student_logits, teacher_logits, y, T=T, alpha=alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        history.append(total / len(loader))
    return history
