"""Counts with tensors and returns a tensor, not a Python float.

check: returns a Python float
says: .item()
"""

import torch


def evaluate(model, loader):
    model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(dim=1) == y).sum()
            total += y.size(0)
    return correct / total
