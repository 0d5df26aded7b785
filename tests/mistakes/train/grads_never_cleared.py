"""train_model never clears the gradients: each backward() adds to the last.

check: clears the gradients for every batch
says: never clears the gradients
mistake: train.gradients_not_cleared
"""

import torch
import torch.nn.functional as F

from .loss import distillation_loss


def train_model(model, loader, epochs=3, lr=1e-3):
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for epoch in range(epochs):
        model.train()
        epoch_loss = 0.0
        for images, labels in loader:
            loss = F.cross_entropy(model(images), labels)
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
        losses.append(epoch_loss / len(loader))
    return losses


def distill(student, teacher, loader, epochs=3, T=2.0, alpha=0.7, lr=1e-3):
    optimizer = torch.optim.Adam(student.parameters(), lr=lr)
    teacher.eval()
    losses = []
    for epoch in range(epochs):
        student.train()
        epoch_loss = 0.0
        for images, labels in loader:
            with torch.no_grad():
                teacher_logits = teacher(images)
            loss = distillation_loss(student(images), teacher_logits, labels, T=T, alpha=alpha)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss += loss.item()
        losses.append(epoch_loss / len(loader))
    return losses
