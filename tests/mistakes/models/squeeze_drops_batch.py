"""The Student is fully convolutional and squeezes its (B, 10, 1, 1) output: for B = 1 the batch dimension goes too.

check: maps a batch of B images (B, 1, 28, 28) to (B, 10) logits [Student-B=1]
says: .squeeze() removes every dimension of size 1
"""

from torch import nn


class Teacher(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 5, stride=2, padding=2), nn.BatchNorm2d(32), nn.ReLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.BatchNorm2d(64), nn.ReLU(),
        )
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x):
        return self.head(self.features(x))


class Student(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 5, stride=2, padding=2), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 10, 7),  # a 7 x 7 map -> one score per class
        )

    def forward(self, x):
        return self.features(x).squeeze()
