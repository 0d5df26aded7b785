"""How long a learner waits: `learnkd check loss` and `learnkd check all --solutions`, as real commands.

    python benchmarks/bench_check.py [--runs 5] [--all-runs 1] [--data-dir DIR] [--baseline CHECKOUT]

Prints the wall time of each run, the median, and the targets (loss <= 5 s, all <= 90 s). `check all`
runs with --no-cache, so the teacher is trained every time (the first run a learner makes). With
--baseline (another checkout of learnkd, e.g. `git worktree add /tmp/base COMMIT`), the same commands run
from that checkout too, alternating with this one's runs, and the ratio of the medians is printed: on a
shared, noisy machine, only figures from the same run compare.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

NEUTRAL = "/" if os.name == "posix" else None
LEARNKD = shutil.which("learnkd") or str(Path(sys.executable).with_name("learnkd"))


def command_of(checkout: str | None) -> list[str]:
    """The `learnkd` command of this installation, or of another checkout (its grader.cli, run from its folder)."""
    if checkout is None:
        return [LEARNKD]
    return [sys.executable, "-c", f"import sys; sys.path.insert(0, {str(Path(checkout).resolve())!r}); "
                                  "from grader.cli import main; main()"]


def wall(args: list[str], env: dict, checkout: str | None = None) -> tuple[float, int, str]:
    start = time.perf_counter()
    # from a neutral folder: `python -m` puts the working folder first on sys.path, which would shadow a baseline
    proc = subprocess.run([*command_of(checkout), *args], capture_output=True, text=True, env=env, cwd=NEUTRAL)
    return time.perf_counter() - start, proc.returncode, proc.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs of `check loss`")
    parser.add_argument("--all-runs", type=int, default=1, help="runs of `check all --solutions` (0: skip)")
    parser.add_argument("--data-dir", default=os.environ.get("LEARNKD_DATA"))
    parser.add_argument("--baseline", help="another checkout of learnkd to time the same commands with")
    args = parser.parse_args()
    env = dict(os.environ)
    if args.data_dir:
        env["LEARNKD_DATA"] = str(Path(args.data_dir).resolve())
    builds = [("this checkout", None)] + ([("baseline", args.baseline)] if args.baseline else [])
    for label, command, runs, target in [
        ("check loss --solutions", ["check", "loss", "--solutions"], args.runs, 5.0),
        ("check all --solutions --no-cache", ["check", "all", "--solutions", "--no-cache"], args.all_runs, 90.0),
    ]:
        if runs <= 0:
            continue
        times: dict[str, list[float]] = {name: [] for name, _ in builds}
        for _ in range(runs):
            for name, checkout in builds:  # alternating: both see the same load
                seconds, code, out = wall(command, env, checkout)
                times[name].append(seconds)
                print(f"{label} ({name}): {seconds:.2f} s (exit {code})", flush=True)
                if code != 0:
                    print(out)
        medians = {name: statistics.median(t) for name, t in times.items()}
        for name, median in medians.items():
            print(f"{label} ({name}): median {median:.2f} s over {runs} runs; target <= {target:.0f} s "
                  f"({'met' if median <= target else 'NOT met'})", flush=True)
        if args.baseline:
            print(f"{label}: this checkout / baseline = {medians['this checkout'] / medians['baseline']:.2f}", flush=True)
        print()
        if "all" in command:
            print(out)

if __name__ == "__main__":
    main()
