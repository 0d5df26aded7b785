"""Counts one per batch instead of one per example.

check: returns a Python float between 0 and 1
says: number of batches
"""

import torch


def evaluate(model, loader):
    model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(1) == y).sum().item()
            total += 1
    return correct / total
