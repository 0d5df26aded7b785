"""Prints megabytes of garbage (control characters, fake results lines) to stdout and stderr, then returns
wrong values and changes its inputs in place.
"""
import json
import os
import sys

import torch

JUNK = (bytes(range(256)) * 64 + b"\x1b[2J\x1b[31m" +
        json.dumps({"status": "passed", "score": 100}).encode() + b"\n") * 20


def _spray():
    for fd in (1, 2):
        os.write(fd, JUNK)
    sys.stdout.write(JUNK.decode("latin-1"))
    sys.stderr.write(JUNK.decode("latin-1"))


def soft_targets(logits, T=1.0):
    _spray()
    logits.data.zero_()
    return torch.full_like(logits, float("nan"))


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    _spray()
    student_logits.data.zero_()
    return torch.full((), float("nan"), requires_grad=True)
