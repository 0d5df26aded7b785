"""Divides by len(loader) * batch_size: more examples than there are when the last batch is partial.

check: is the fraction of all examples
says: len(loader.dataset)
"""

import torch


def evaluate(model, loader):
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in loader:
            correct += (model(x).argmax(dim=1) == y).sum().item()
    return correct / (len(loader) * loader.batch_size)
