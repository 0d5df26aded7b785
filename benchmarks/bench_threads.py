"""The worker's training thread count on a busy machine: a Teacher training step on 1 thread and on more.

    python benchmarks/bench_threads.py [--repeats 3] [--steps 30] [--threads 1 2] [--busy 2]

Each measurement is a fresh process that takes --steps training steps of the reference Teacher (batch 128,
Adam, as the reference train_model does) on torch.set_num_threads(N) after 3 warm-up steps, and prints the
median time of a step. Quiet and with --busy child processes spinning on a core each (bounded, ended by
their PID), alternating, --repeats times: the figures behind ``grader.grading.end_to_end.training_threads``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPIN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def child(threads: int, steps: int) -> None:
    import torch
    from torch.nn import functional as F

    from solutions.models import Teacher

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = Teacher()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x, y = torch.randn(128, 1, 28, 28), torch.randint(0, 10, (128,))
    times, cpu = [], 0.0
    for step in range(steps + 3):
        start, start_cpu = time.perf_counter(), time.process_time()
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        if step >= 3:
            times.append(time.perf_counter() - start)
            cpu += time.process_time() - start_cpu
    print(json.dumps({"threads": threads, "median_ms": statistics.median(times) * 1000, "cpu_ms": cpu / steps * 1000}))


def start(threads: int, steps: int, env: dict | None = None) -> subprocess.Popen:
    """A child measuring ``threads``; ``env``: more environment variables (OMP_WAIT_POLICY)."""
    env = dict(os.environ, **(env or {}), PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, __file__, "--child", str(threads), "--steps", str(steps)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)


def result(proc: subprocess.Popen) -> dict:
    """The child's figures: median_ms (wall time of a step), cpu_ms (CPU time of a step, every thread)."""
    out, err = proc.communicate(timeout=900)
    if proc.returncode != 0:
        raise SystemExit(err)
    return json.loads(out.strip().splitlines()[-1])


def measure(threads: int, steps: int) -> float:
    return result(start(threads, steps))["median_ms"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--busy", type=int, default=2, help="busy processes beside the loaded runs")
    parser.add_argument("--spin-s", type=float, default=300.0)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.steps)
    figures: dict[tuple[str, int], list[float]] = {}
    loads = {"quiet": [], "loaded": []}
    for repeat in range(args.repeats):
        for label in ("quiet", "loaded"):
            for threads in args.threads:
                spinners = [subprocess.Popen([sys.executable, "-c", SPIN, str(args.spin_s)])
                            for _ in range(args.busy if label == "loaded" else 0)]
                try:
                    ms = measure(threads, args.steps)
                finally:
                    for proc in spinners:
                        if proc.poll() is None:
                            os.kill(proc.pid, 9)
                        proc.wait()
                loads[label].append(os.getloadavg()[0])
                figures.setdefault((label, threads), []).append(ms)
                print(f"repeat {repeat + 1} {label:<6} {threads} thread{'s' if threads > 1 else ' '}: "
                      f"{ms:7.1f} ms a Teacher step (load {loads[label][-1]:.1f})", flush=True)
    print(f"\nmedian of {args.repeats} repeats, ms a Teacher training step (batch 128), {os.cpu_count()} cores:")
    for label in ("quiet", "loaded"):
        cells = "  ".join(f"{t} thread{'s' if t > 1 else ' '}: {statistics.median(figures[(label, t)]):7.1f}"
                          for t in args.threads)
        extra = f" with {args.busy} busy processes" if label == "loaded" else ""
        print(f"  {label}{extra} (load {min(loads[label]):.1f}-{max(loads[label]):.1f}): {cells}")


if __name__ == "__main__":
    main()
