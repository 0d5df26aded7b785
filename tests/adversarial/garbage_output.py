"""Prints megabytes of garbage (control characters, fake results lines) to stdout and stderr, then returns wrong values.

says: soft_targets
passes: allowed (a constant passes the checks that only ask for consistency)
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
    return logits * 0 + 0.1


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    _spray()
    return (student_logits * 0).sum() + 1.0
