"""Correct, written differently: model.zero_grad() and zero_grad(set_to_none=False) after the step,
a detached teacher frozen with requires_grad_(False), distillation_loss under another name, a mean
weighted by batch size, enumerate and a while loop, an epoch-wise StepLR schedule.
"""

import torch
import torch.nn.functional as F

from .loss import distillation_loss as kd_loss


def train_model(model, loader, epochs=3, lr=1e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    losses = []
    epoch = 0
    while epoch < epochs:
        model.train()
        seen, summed = 0, 0.0
        for i, (images, targets) in enumerate(loader):
            logits = model(images)
            loss = F.cross_entropy(logits, targets)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=False)
            summed += loss.item() * images.shape[0]
            seen += images.shape[0]
        scheduler.step()
        losses.append(summed / seen)
        epoch += 1
    return losses


def distill(student, teacher, loader, epochs=3, T=2.0, alpha=0.7, lr=1e-3):
    teacher.eval()
    teacher.requires_grad_(False)
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    out = []
    for epoch in range(epochs):
        student.train()
        batch_losses = []
        for images, targets in loader:
            student.zero_grad()
            soft = teacher(images).detach()
            loss = kd_loss(student(images), soft, targets, T, alpha)
            loss.backward()
            optimizer.step()
            batch_losses.append(float(loss))
        out.append(sum(batch_losses) / len(batch_losses))
    return out
