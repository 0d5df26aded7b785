"""train_model loops a fixed 3 times whatever epochs says (the seed lab's default written in).

check: trains for `epochs` passes over the loader [train_model]
says: made 3 passes over the loader
"""

import torch
import torch.nn.functional as F

from .loss import distillation_loss

EPOCHS = 3


def train_model(model, loader, epochs=3, lr=1e-3):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for epoch in range(EPOCHS):
        model.train()
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
    opt = torch.optim.Adam(student.parameters(), lr=lr)
    teacher.eval()
    history = []
    for epoch in range(epochs):
        student.train()
        total = 0.0
        for x, y in loader:
            with torch.no_grad():
                teacher_out = teacher(x)
            loss = distillation_loss(student(x), teacher_out, y, T=T, alpha=alpha)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item()
        history.append(total / len(loader))
    return history
