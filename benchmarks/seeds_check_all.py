"""Does `learnkd check all --solutions` pass for every seed? Runs it for seeds 0..N-1 as a real command.

    python benchmarks/seeds_check_all.py [--seeds 20] [--data-dir DIR] [--path FOLDER]

--path grades a folder laid out like exercises/ instead of the reference solutions: for instance the
hinted models with the seed lab's constant-rate loops (tests/correct/train/seed_lab_teacher_eval.py), the weakest
correct submission that the floors of `check all` must let through.

Prints one line per seed (exit code, wall time, the accuracies of the comparison table) and a tally.
Not a test: it takes about N x 60-80 s on a 2-core CPU.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

LEARNKD = shutil.which("learnkd") or str(Path(sys.executable).with_name("learnkd"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--data-dir", default=os.environ.get("LEARNKD_DATA"))
    parser.add_argument("--path", help="grade this folder instead of the reference solutions")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.data_dir:
        env["LEARNKD_DATA"] = str(Path(args.data_dir).resolve())
    passed = 0
    for seed in range(args.first, args.first + args.seeds):
        start = time.perf_counter()
        proc = subprocess.run([LEARNKD, "check", "all", *(["--path", args.path] if args.path else ["--solutions"]),
                               "--seed", str(seed), "--no-cache"],
                              capture_output=True, text=True, env=env)
        seconds = time.perf_counter() - start
        accuracies = re.findall(r"^\s*(teacher|student \([^)]*\))\s+([\d.]+%)", proc.stdout, re.M)
        shown = ", ".join(f"{name} {acc}" for name, acc in accuracies)
        passed += proc.returncode == 0
        print(f"seed {seed:2d}: exit {proc.returncode}  {seconds:5.1f} s  {shown}", flush=True)
        if proc.returncode != 0:
            print(proc.stdout[-3000:], proc.stderr[-2000:])
    print(f"{passed}/{args.seeds} seeds passed")
    return 0 if passed == args.seeds else 1


if __name__ == "__main__":
    sys.exit(main())
