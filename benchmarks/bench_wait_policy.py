"""OpenMP's wait policy for PyTorch's threads when trainings share the cores (`learnkd grade --jobs`, or a
learner's editor and browser beside `learnkd check all`).

    python benchmarks/bench_wait_policy.py [--repeats 5] [--steps 30] [--threads 2]

Each measurement runs the Teacher training step of bench_threads.py (batch 128, Adam) in fresh processes with
OMP_WAIT_POLICY unset (OpenMP's default: a thread that waits for work spins on its core for a while) and
PASSIVE (it sleeps): one process alone, then two side by side, each on --threads threads. It prints the
median wall time of a step and the CPU time a step burns, over --repeats alternating repeats: the figures
behind ``grader.lab.cores.wait_asleep``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_threads import result, start  # noqa: E402

POLICIES = {"default": {}, "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    if "OMP_WAIT_POLICY" in os.environ:
        raise SystemExit("unset OMP_WAIT_POLICY first: the benchmark sets it in each child")
    figures: dict[tuple[str, int], list[dict]] = {}
    for repeat in range(args.repeats):
        for side_by_side in (1, 2):
            for policy, env in POLICIES.items():
                procs = [start(args.threads, args.steps, env) for _ in range(side_by_side)]
                found = [result(proc) for proc in procs]
                figures.setdefault((policy, side_by_side), []).extend(found)
                print(f"repeat {repeat + 1} {side_by_side} process{'es' if side_by_side > 1 else '  '} {policy:<8}: "
                      + ", ".join(f"{f['median_ms']:6.1f} ms a step ({f['cpu_ms']:6.1f} ms CPU)" for f in found),
                      flush=True)
    print(f"\nmedian over {args.repeats} repeats, a Teacher training step (batch 128) on {args.threads} threads each, "
          f"{os.cpu_count()} cores:")
    for side_by_side in (1, 2):
        base = statistics.median(f["median_ms"] for f in figures[("default", side_by_side)])
        for policy in POLICIES:
            found = figures[(policy, side_by_side)]
            wall = statistics.median(f["median_ms"] for f in found)
            cpu = statistics.median(f["cpu_ms"] for f in found)
            print(f"  {side_by_side} process{'es' if side_by_side > 1 else '  '} {policy:<8} {wall:7.1f} ms a step "
                  f"({wall / base:.2f}x the default), {cpu:7.1f} ms CPU a step")


if __name__ == "__main__":
    main()
