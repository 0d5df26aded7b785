"""How long a learner waits: `learnkd check loss` and `learnkd check all --solutions`, as real commands.

    python benchmarks/bench_check.py [--runs 5] [--all-runs 1] [--data-dir DIR]

Prints the wall time of each run, the median, and the targets (loss <= 5 s, all <= 90 s). `check all`
runs with --no-cache, so the teacher is trained every time (the first run a learner makes).
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

LEARNKD = shutil.which("learnkd") or str(Path(sys.executable).with_name("learnkd"))


def wall(args: list[str], env: dict) -> tuple[float, int, str]:
    start = time.perf_counter()
    proc = subprocess.run([LEARNKD, *args], capture_output=True, text=True, env=env)
    return time.perf_counter() - start, proc.returncode, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of `check loss`")
    parser.add_argument("--all-runs", type=int, default=1, help="runs of `check all --solutions` (0: skip)")
    parser.add_argument("--data-dir", default=os.environ.get("LEARNKD_DATA"))
    args = parser.parse_args()
    env = dict(os.environ)
    if args.data_dir:
        env["LEARNKD_DATA"] = str(Path(args.data_dir).resolve())
    for label, command, runs, target in [
        ("check loss --solutions", ["check", "loss", "--solutions"], args.runs, 5.0),
        ("check all --solutions --no-cache", ["check", "all", "--solutions", "--no-cache"], args.all_runs, 90.0),
    ]:
        if runs <= 0:
            continue
        times = []
        for _ in range(runs):
            seconds, code, out = wall(command, env)
            times.append(seconds)
            print(f"{label}: {seconds:.2f} s (exit {code})", flush=True)
            if code != 0:
                print(out)
        median = statistics.median(times)
        print(f"{label}: median {median:.2f} s over {runs} runs; target <= {target:.0f} s "
              f"({'met' if median <= target else 'NOT met'})\n", flush=True)
        if "all" in command:
            print(out)


if __name__ == "__main__":
    main()
