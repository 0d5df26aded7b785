"""The test suite's time: this checkout's, and a baseline commit's beside it.

    python benchmarks/bench_suite.py [--baseline COMMIT] [--pairs 1] [-- PYTEST_ARGS ...]

Runs `python -m pytest -q PYTEST_ARGS` (every test by default; `-- -m "not slow"` for the developer's loop) with
LEARNKD_DATA as set, else ../shared/data beside the project. With --baseline, a git worktree of that commit, in a
temporary folder, runs the same command with its own tests, its own `learnkd` and its own judge (PYTHONPATH
points at it), the two alternating in pairs whose order alternates too (this, baseline; baseline, this; ...):
a shared machine's speed drifts by a quarter within an hour, so only runs side by side compare. Each run is
reported with its wall time and the CPU-seconds the whole machine spent meanwhile (from /proc/stat: the suite
starts judges, workers and sandboxes that pytest does not wait for), then the medians and the ratios.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THIS = "this checkout"
BASELINE = "baseline"


def machine_cpu_seconds() -> float:
    """CPU-seconds spent by every process since boot (user, nice, system, iowait, irq, softirq); NaN without
    /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
    except OSError:
        return float("nan")
    return sum(int(fields[i]) for i in (1, 2, 3, 5, 6, 7)) / os.sysconf("SC_CLK_TCK")


def run_suite(checkout: Path | None, pytest_args: list[str], log: Path) -> tuple[float, float, str]:
    """One run of the suite: (wall seconds, machine CPU-seconds, pytest's last line)."""
    env = dict(os.environ)
    env.setdefault("LEARNKD_DATA", str(ROOT.parent / "shared" / "data"))
    if checkout is not None:  # its code first on the path: its tests, its `learnkd` and its judge all run it
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(checkout), env.get("PYTHONPATH")]))
    cpu, start = machine_cpu_seconds(), time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.run([sys.executable, "-m", "pytest", "-q", *pytest_args], cwd=checkout or ROOT, env=env,
                              stdout=out, stderr=subprocess.STDOUT).returncode
    wall, cpu = time.perf_counter() - start, machine_cpu_seconds() - cpu
    lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    last = lines[-1] if lines else "(no output)"
    return wall, cpu, last if code == 0 else f"exit code {code}: {last} (log: {log})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", metavar="COMMIT", help="a commit of this repository to run beside this checkout")
    parser.add_argument("--pairs", type=int, default=1, help="runs of each (with --baseline: pairs, order alternating)")
    parser.add_argument("pytest_args", nargs="*", help="after --: arguments for pytest (default: none, every test)")
    args = parser.parse_args()
    logs = Path(tempfile.mkdtemp(prefix="learnkd-bench-suite-"))
    worktree = logs / "baseline"
    if args.baseline:
        made = subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(worktree), args.baseline],
                              capture_output=True, text=True)
        if made.returncode != 0:
            sys.exit(f"--baseline {args.baseline}: git could not check it out: {made.stderr.strip()}")
    runs: dict[str, list[tuple[float, float]]] = {THIS: [], BASELINE: []}
    try:
        for pair in range(args.pairs):
            order = [(THIS, None), (BASELINE, worktree)] if args.baseline else [(THIS, None)]
            for name, checkout in order if pair % 2 == 0 else order[::-1]:
                wall, cpu, last = run_suite(checkout, args.pytest_args, logs / f"{name.replace(' ', '-')}-{pair}.txt")
                runs[name].append((wall, cpu))
                print(f"{time.strftime('%H:%M')} {name}: {wall:.0f} s wall, {cpu:.0f} CPU-seconds  [{last}]", flush=True)
    finally:
        if args.baseline:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(worktree)],
                           capture_output=True)
    print()
    medians = {}
    for name, measured in runs.items():
        if measured:
            medians[name] = (statistics.median(w for w, _ in measured), statistics.median(c for _, c in measured))
            print(f"{name}: median {medians[name][0]:.0f} s wall, {medians[name][1]:.0f} CPU-seconds "
                  f"over {len(measured)} run(s)")
    if args.baseline:
        (wall, cpu), (base_wall, base_cpu) = medians[THIS], medians[BASELINE]
        print(f"{THIS} / {BASELINE} ({args.baseline}): {wall / base_wall:.2f}x wall, {cpu / base_cpu:.2f}x CPU")
    print(f"logs: {logs}")


if __name__ == "__main__":
    main()
