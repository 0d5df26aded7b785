"""No torch.no_grad(): every forward pass builds an autograd graph.

check: builds no autograd graph
says: torch.no_grad()
"""


def evaluate(model, loader):
    model.eval()
    correct, total = 0, 0
    for x, y in loader:
        pred = model(x).argmax(dim=1)
        correct += (pred == y).sum().item()
        total += y.size(0)
    return correct / total
