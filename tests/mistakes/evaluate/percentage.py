"""Returns a percentage instead of a fraction.

check: returns a Python float between 0 and 1
says: You returned a percentage
mistake: evaluate.percentage
"""

import torch


def evaluate(model, loader):
    model.eval()
    correct, total = 0, 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(dim=1) == y).sum().item()
            total += len(y)
    return 100.0 * correct / total
