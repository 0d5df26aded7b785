"""Grading a class: `learnkd grade` on 20 submissions (correct, mistaken, hanging) with --jobs 2.

    python benchmarks/bench_grade.py [--jobs 2] [--timeout 30] [--topics models,loss,train,evaluate]
                                     [--baseline CHECKOUT] [--repeats 1] [--correct-only N]

Builds the submissions in a temporary folder (copies of solutions/: 8 as they are, 8 with a mistaken
loss.py from tests/mistakes/loss/ or the stub, 4 that hang: 2 in a check, 2 while loading), runs the real
command, and prints the batch's wall time, each submission's grading time, and whether every hanging one
was stopped at the wall-clock limit (--timeout, below the 30 s limit of one check so that only the
limit can stop them). With --baseline (another checkout of learnkd), the same batch is graded by that
checkout too, alternating, --repeats times each, and the ratio of the median wall times is printed.
"""

import argparse
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
LEARNKD = shutil.which("learnkd") or str(Path(sys.executable).with_name("learnkd"))

LOOP_IN_FUNCTION = '''import signal

import torch.nn.functional as F


def soft_targets(logits, T=1.0):
    return F.softmax(logits / T, dim=-1)


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    signal.signal(signal.SIGALRM, signal.SIG_IGN)  # pytest-timeout's alarm: only the wall-clock limit is left
    while True:
        pass
'''

LOOP_AT_IMPORT = '''import torch.nn.functional as F

while True:  # at import: the grading process never gets to the checks
    pass


def soft_targets(logits, T=1.0):
    return F.softmax(logits / T, dim=-1)
'''


def build(folder: Path, correct_only: int = 0) -> dict[str, str]:
    """The 20 submissions under ``folder`` (or ``correct_only`` copies of the reference alone): name -> kind."""
    kinds = {}
    if correct_only:
        for i in range(correct_only):
            shutil.copytree(SOLUTIONS, folder / f"correct-{i}", ignore=shutil.ignore_patterns("__pycache__"))
            kinds[f"correct-{i}"] = "correct"
        return kinds
    mistakes = sorted((ROOT / "tests" / "mistakes" / "loss").glob("*.py")) or [ROOT / "exercises" / "loss.py"]
    for i in range(8):
        shutil.copytree(SOLUTIONS, folder / f"correct-{i}", ignore=shutil.ignore_patterns("__pycache__"))
        kinds[f"correct-{i}"] = "correct"
    for i in range(8):
        name = f"mistaken-{i}"
        shutil.copytree(SOLUTIONS, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(mistakes[i % len(mistakes)], folder / name / "loss.py")
        kinds[name] = "mistaken"
    for i, source in enumerate([LOOP_IN_FUNCTION, LOOP_IN_FUNCTION, LOOP_AT_IMPORT, LOOP_AT_IMPORT]):
        name = f"hanging-{i}"
        shutil.copytree(SOLUTIONS, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        (folder / name / "loss.py").write_text(source)
        kinds[name] = "hanging"
    return kinds


def command_of(checkout: str | None) -> list[str]:
    """The `learnkd` command of this installation, or of another checkout (its grader.cli)."""
    if checkout is None:
        return [LEARNKD]
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(checkout).resolve())!r}); "
                                  "from grader.cli import main; main()"]


def grade(kinds: dict[str, str], tmp: Path, args, checkout: str | None, label: str) -> float:
    """One `learnkd grade` of the batch; prints each submission's score and time; returns the wall time."""
    out = tmp / f"out-{label}"
    shutil.rmtree(out, ignore_errors=True)
    command = [*command_of(checkout), "grade", *[str(tmp / "class" / name) for name in kinds], "--out", str(out),
               "--jobs", str(args.jobs), "--timeout", str(args.timeout), "--topics", args.topics]
    start = time.perf_counter()
    # from a neutral folder: `python -m` puts the working folder first on sys.path, which would shadow a baseline
    proc = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), cwd=tmp)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"learnkd grade ({label}) failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    with open(out / "gradebook.csv") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    possible = rows["(points possible)"]["total"]
    print(f"\n[{label}]\n{'submission':<14}{'kind':<10}{'score':>9}{'seconds':>9}  note")
    seconds = {}
    for name, kind in kinds.items():
        found = list(out.glob(f"**/{name}/results.json")) or list(out.glob(f"**/{name}*/results.json"))
        seconds[name] = json.loads(found[0].read_text())["execution_time"] if found else float("nan")
        print(f"{name:<14}{kind:<10}{rows[name]['total']:>5}/{possible:<3}{seconds[name]:>9.1f}  {rows[name]['crash'][:70]}")
    hanging = [n for n, k in kinds.items() if k == "hanging"]
    stopped = [n for n in hanging if f"longer than {args.timeout:.0f} s" in rows[n]["crash"]
               and args.timeout <= seconds[n] < args.timeout + 10]
    others = [seconds[n] for n, k in kinds.items() if k != "hanging"]
    print(f"{len(kinds)} submissions, --jobs {args.jobs}, --timeout {args.timeout:g} s, topics {args.topics}: "
          f"{wall:.1f} s wall for the batch ({3600 * len(kinds) / wall:.0f} submissions an hour)")
    print(f"grading time of the others: median {statistics.median(others):.1f} s, max {max(others):.1f} s")
    print(f"hanging ones stopped at the limit: {len(stopped)}/{len(hanging)} "
          f"({', '.join(f'{seconds[n]:.1f} s' for n in hanging)})")
    correct_full = all(rows[n]["total"] == possible for n, k in kinds.items() if k == "correct")
    print(f"every correct one got full points: {correct_full}", flush=True)
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=25.0, help="wall-clock seconds per submission")
    parser.add_argument("--topics", default="models,loss,train,evaluate")
    parser.add_argument("--baseline", help="another checkout of learnkd to grade the same batch with")
    parser.add_argument("--repeats", type=int, default=1, help="gradings of the batch per checkout")
    parser.add_argument("--correct-only", type=int, default=0, metavar="N",
                        help="grade N copies of the reference instead of the mixed 20 (e.g. with --topics all "
                             "--timeout 1800: the throughput of full gradings, no submission hanging)")
    args = parser.parse_args()
    builds = [("this checkout", None)] + ([("baseline", args.baseline)] if args.baseline else [])
    with tempfile.TemporaryDirectory(prefix="learnkd-bench-grade-") as tmp:
        tmp = Path(tmp)
        kinds = build(tmp / "class", args.correct_only)
        walls: dict[str, list[float]] = {name: [] for name, _ in builds}
        for _ in range(args.repeats):
            for name, checkout in builds:  # alternating: both see the same load
                walls[name].append(grade(kinds, tmp, args, checkout, name))
        print()
        for name, times in walls.items():
            print(f"{name}: median {statistics.median(times):.1f} s wall ({', '.join(f'{t:.1f}' for t in times)})")
        if args.baseline:
            ratio = statistics.median(walls["this checkout"]) / statistics.median(walls["baseline"])
            print(f"this checkout / baseline = {ratio:.2f}")

if __name__ == "__main__":
    main()
