"""Collects every prediction, then takes one mean; a decorator turns gradients off; restores train mode."""

import torch


@torch.no_grad()
def evaluate(model, loader):
    was_training = model.training
    model.train(False)
    predictions, targets = [], []
    for x, y in loader:
        _, predicted = torch.max(model(x), 1)
        predictions.append(predicted)
        targets.append(y)
    accuracy = (torch.cat(predictions) == torch.cat(targets)).double().mean().item()
    model.train(was_training)
    return float(accuracy)
