"""Writes fake "all passed" results to every file descriptor and results file it can find.

It writes the old JSONL results format and the channel's line format to fds 3..255 and to
/tmp/learnkd-*/results.jsonl, then returns wrong values and changes its inputs in place.

says: not a reply
"""
import glob
import json
import os

import torch

FAKE = {"id": "test_loss.py::test_x", "topic": "loss", "name": "x", "status": "passed", "duration": 0.0,
        "message": "", "frames": [], "not_started": False, "output": ""}
LINES = (json.dumps(FAKE) + "\n" + "0" * 64 + " 0 " + json.dumps({"kind": "check", "data": FAKE}) + "\n").encode()
for fd in range(3, 256):
    try:
        os.write(fd, LINES)
    except OSError:
        pass
for path in glob.glob("/tmp/learnkd-*/results.jsonl"):
    try:
        with open(path, "a") as f:
            f.write(LINES.decode())
    except OSError:
        pass


def soft_targets(logits, T=1.0):
    logits.data.zero_()
    return torch.full_like(logits, float("nan"))


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    student_logits.data.zero_()
    return torch.full((), float("nan"), requires_grad=True)
