"""No model.eval(): dropout stays on while evaluating.

check: eval mode
says: model.eval()
"""

import torch


def evaluate(model, loader):
    correct, total = 0, 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(dim=1) == y).sum().item()
            total += y.size(0)
    return correct / total
