"""The seed lab's loops, pasted into the exercise's signatures: constant-lr Adam with its default lr
(the lr argument unused), no scheduler, model.train() once before the epochs; each loop collects its
epoch means so that it returns what the signature promises. Its distill never calls teacher.eval(): in
the seed notebook the teacher happened to be in eval mode after evaluate(teacher), but a teacher that
comes straight from train_model is in train mode. It fails that one check, with the fix named; with
teacher.eval() added it is tests/correct/train/seed_lab_teacher_eval.py.

check: distill runs the teacher in eval mode
says: distill never calls teacher.eval(): the teacher comes in train mode, as train_model leaves it
only: yes
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
