"""correct // total: integer division, which gives 0 for any accuracy below 100%.

check: returns a Python float between 0 and 1
says: integer division
"""

import torch


def evaluate(model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(dim=1) == y).sum().item()
            total += y.numel()
    return correct // total
