"""Appends to the instructor's grader/course/points.toml (found through the import system, or by walking the disk)
a line that breaks it, which once crashed `learnkd grade` with a raw traceback; and sets every check's
points to 0 in any points file named by $LEARNKD_POINTS.
"""
import importlib.util
import os
import time

BREAK = "\n[checks]  # appended by tests/adversarial/append_points.py: a second [checks] table is not TOML\n"


def points_files():
    found = set()
    if os.environ.get("LEARNKD_POINTS"):
        found.add(os.environ["LEARNKD_POINTS"])
    try:
        spec = importlib.util.find_spec("grader")
        for folder in (spec.submodule_search_locations or []) if spec else []:
            found.add(os.path.join(folder, "course", "points.toml"))
    except Exception:
        pass
    deadline = time.monotonic() + 5
    for folder, dirs, files in os.walk("/"):
        dirs[:] = [d for d in dirs if os.path.join(folder, d) not in ("/proc", "/sys", "/dev")]
        if time.monotonic() > deadline:
            break
        if "points.toml" in files and "topics.toml" in files:
            found.add(os.path.join(folder, "points.toml"))
    return found


def append():
    for path in points_files():
        try:
            with open(path, "a") as f:
                f.write(BREAK)
        except OSError:
            pass


append()


def soft_targets(logits, T=1.0):
    raise NotImplementedError("loss: write soft_targets in exercises/loss.py (stuck? learnkd hint loss)")


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    raise NotImplementedError("loss: write distillation_loss in exercises/loss.py (stuck? learnkd hint loss)")
