"""Appends a line to ~/.bashrc (and to the .bashrc of the grader's HOME, found in its parent's environment,
and of the folder above the submission, as when `check --path` is run from $HOME).

The line is a harmless comment; a real attacker's would run on the instructor's next shell.
"""
import os

LINE = "\n# written by a learnkd submission (tests/adversarial/write_bashrc.py)\n"


def homes():
    found = {os.path.expanduser("~"), os.path.dirname(os.getcwd())}
    try:
        with open(f"/proc/{os.getppid()}/environ", "rb") as f:
            for entry in f.read().split(b"\0"):
                if entry.startswith(b"HOME="):
                    found.add(entry[5:].decode(errors="replace"))
    except OSError:
        pass
    return found


def write():
    for home in homes():
        for name in (".bashrc", ".profile"):
            try:
                with open(os.path.join(home, name), "a") as f:
                    f.write(LINE)
            except OSError:
                pass


write()


def soft_targets(logits, T=1.0):
    write()
    raise NotImplementedError("loss: write soft_targets in exercises/loss.py (stuck? learnkd hint loss)")


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    raise NotImplementedError("loss: write distillation_loss in exercises/loss.py (stuck? learnkd hint loss)")
