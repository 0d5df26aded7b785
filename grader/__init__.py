"""The course's machinery: MNIST data, the hidden checks, and the `learnkd` command."""
