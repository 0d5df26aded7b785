"""The comparison's latency figures, run after run: quiet, and with two busy processes beside it.

    python benchmarks/bench_latency.py [--runs 10] [--spin-s 180] [--out FILE.json]

The three models of the comparison (the reference Teacher and Student, twice: the distilled and the
hard-label one are the same network) are exported once as the worker exports them (a graph for 1,000 images
and one for a single image) and loaded as the judge's graphs. Each run is a fresh process that times them as
`learnkd check all` does (``grader.lab.latency.measure``: one thread, warm-up, interleaved rounds, the median
and the interquartile range), then, for comparison, as the worker did before (each model on its own, one
after another, the median of ~0.3 s of calls on torch's default thread count). The weights are not trained:
a forward pass costs the same whatever the weights.

Runs alternate, quiet and loaded (two child processes that spin on a core each for at most --spin-s seconds,
ended by their PID when the run is over), so both conditions meet the same background. Printed for each
condition, model and batch size: the 10 figures' median and range, how many runs printed "noisy", the spread
each run claims (median ± half its IQR) and in how many runs that claim holds the median of all the runs'
figures; then the reading's speed phrase per run. On a shared machine nothing is ever fully quiet: the
load average is printed with the figures. Within each table: whether the two identical students agree
within the spread claimed, and the Teacher / Student ratio from run to run. BENCH_CLOCK=cpu times the
thread's CPU time (time.thread_time) instead of the wall clock, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("teacher", "student (distilled)", "student (hard labels)")
SPIN = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end:\n    pass\n"


def export_graphs(path: Path) -> None:
    """The three models' graphs (1,000 images and 1 image), as the worker sends them, into ``path``."""
    import torch

    from grader.worker.exporting import export_model
    from solutions.models import Student, Teacher

    graphs = {}
    for seed, name in enumerate(NAMES):
        torch.manual_seed(seed)
        model = (Teacher if name == "teacher" else Student)().eval()
        graphs[name] = {"graph": export_model(model, 1000), "single": export_model(model, 1)}
    torch.save(graphs, path)


def child(path: str) -> None:
    """One run: the judge's measurement, then the worker's former one; JSON on stdout."""
    import statistics as stats

    import torch

    from grader.lab import latency
    from grader.grading.graph import Graph

    graphs = torch.load(path, weights_only=True)
    loaded = {name: (Graph(g["graph"], name), Graph(g["single"], name)) for name, g in graphs.items()}
    start = time.perf_counter()
    clock = {"wall": time.perf_counter, "cpu": time.thread_time}[os.environ.get("BENCH_CLOCK", "wall")]
    new = latency.measure({name: {1: single.forward, 1000: big.forward} for name, (big, single) in loaded.items()},
                          clock=clock)
    seconds = time.perf_counter() - start
    old = {}
    with torch.no_grad():
        for name, (big, single) in loaded.items():  # grader/worker/pipeline.py's cpu_latency_ms, before
            old[name] = {}
            for batch, graph in ((1, single), (1000, big)):
                x = torch.randn(batch, 1, 28, 28)
                graph.forward(x)
                times, spent = [], 0.0
                while len(times) < 3 or (spent < 0.3 and len(times) < 200):
                    t0 = time.perf_counter()
                    graph.forward(x)
                    times.append(time.perf_counter() - t0)
                    spent += times[-1]
                old[name][str(batch)] = stats.median(times) * 1000
    print(json.dumps({"seconds": seconds, "threads_before": torch.get_num_threads(),
                      "new": {n: {str(b): {"median": t.median_ms, "iqr": t.iqr_ms, "calls": t.calls}
                                  for b, t in by.items()} for n, by in new.items()},
                      "old": old}))


def spin(seconds: float, count: int = 2) -> list[subprocess.Popen]:
    return [subprocess.Popen([sys.executable, "-c", SPIN, str(seconds)]) for _ in range(count)]


def stop(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, 9)
        proc.wait()


def one_run(graphs: Path) -> dict:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep))
    proc = subprocess.run([sys.executable, __file__, "--child", str(graphs)], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def summary(label: str, runs: list[dict]) -> dict:
    from grader.lab import latency

    print(f"\n== {label}: {len(runs)} runs (load average during them: "
          f"{min(r['load'] for r in runs):.1f}-{max(r['load'] for r in runs):.1f}; timing took "
          f"{statistics.median(r['seconds'] for r in runs):.1f} s a run, median)")
    out = {}
    for batch in ("1", "1000"):
        for name in NAMES:
            medians = [r["new"][name][batch]["median"] for r in runs]
            iqrs = [r["new"][name][batch]["iqr"] for r in runs]
            consensus = statistics.median(medians)
            shown = [(m, q) for m, q in zip(medians, iqrs) if not latency.noisy(m, q)]
            holds = sum(abs(m - consensus) <= q / 2 for m, q in shown)
            near = sum(abs(m - consensus) <= max(q / 2, 0.1 * consensus) for m, q in shown)
            old = [r["old"][name][batch] for r in runs]
            row = {"median_of_runs": consensus, "min": min(medians), "max": max(medians),
                   "relative_range": (max(medians) - min(medians)) / consensus,
                   "claimed_half_iqr_median": statistics.median(iqrs) / 2, "noisy": len(runs) - len(shown),
                   "claim_holds": holds, "within_claim_or_10pct": near, "shown": len(shown),
                   "old_median": statistics.median(old), "old_min": min(old), "old_max": max(old)}
            out[f"{name} @ {batch}"] = row
            print(f"  {name:<22} {batch:>4} image{'s' if batch != '1' else ' '}: figures {consensus:8.3f} ms "
                  f"(range {min(medians):.3f}-{max(medians):.3f}, ±{100 * row['relative_range'] / 2:.0f}%), "
                  f"claimed ± {row['claimed_half_iqr_median']:.3f} ms; noisy {row['noisy']}/{len(runs)}; "
                  f"claim holds the runs' median {holds}/{len(shown)} | before: {statistics.median(old):8.3f} ms "
                  f"(range {min(old):.3f}-{max(old):.3f})")
    return out


def phrases(runs: list[dict]) -> list[str]:
    """The speed phrase of the reading under the table (``grader.lab.report.speed_phrase``), per run."""
    from grader.lab import latency
    from grader.lab.report import speed_phrase

    said = []
    for r in runs:
        figures = {}
        for name in NAMES:
            m, q = r["new"][name]["1"]["median"], r["new"][name]["1"]["iqr"]
            figures[name] = {"latency_ms_batch_1": {"mean": m, "std": 0.0, "values": [m]},
                             "latency_iqr_ms_batch_1": {"mean": q, "std": 0.0, "values": [q]},
                             "latency_noisy_batch_1": latency.noisy(m, q)}
        said.append(speed_phrase(figures["teacher"], figures["student (distilled)"]).split(" (")[0])
    return said


def within_a_table(runs: list[dict]) -> dict:
    """What one table claims about its rows: the two students (the same network) within each other's spread,
    and the Teacher / Student ratio from run to run."""
    from grader.lab import latency

    out = {}
    for batch in ("1", "1000"):
        same, shown, ratios = 0, 0, []
        for r in runs:
            d, h, t = (r["new"][n][batch] for n in ("student (distilled)", "student (hard labels)", "teacher"))
            if not latency.noisy(d["median"], d["iqr"]) and not latency.noisy(h["median"], h["iqr"]):
                shown += 1
                same += abs(d["median"] - h["median"]) <= max(d["iqr"], h["iqr"]) / 2
            ratios.append(t["median"] / d["median"])
        middle = statistics.median(ratios)
        out[batch] = {"students_within_claim": same, "students_shown": shown, "ratio_median": middle,
                      "ratio_min": min(ratios), "ratio_max": max(ratios)}
        print(f"  {batch:>4} image{'s' if batch != '1' else ' '}: the two identical students within the spread "
              f"claimed {same}/{shown} runs (both shown); Teacher / Student {middle:.2f}x "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}, ±{50 * (max(ratios) - min(ratios)) / middle:.0f}%)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--spin-s", type=float, default=180.0, help="the most a busy process spins")
    parser.add_argument("--out", type=Path, help="write the figures as JSON here too")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child)
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        graphs = Path(tmp) / "graphs.pt"
        export_graphs(graphs)
        runs = {"quiet": [], "two busy processes": []}
        for i in range(args.runs):
            for label in runs:
                busy = spin(args.spin_s) if label != "quiet" else []
                try:
                    time.sleep(0.5 if busy else 0.0)  # the spinners are on their cores
                    result = one_run(graphs)
                finally:
                    stop(busy)
                result["load"] = os.getloadavg()[0]
                runs[label].append(result)
                one = "  ".join(f"{n.split()[0][:7]} {result['new'][n]['1']['median']:.3f}±"
                                f"{result['new'][n]['1']['iqr'] / 2:.3f}" for n in NAMES)
                print(f"run {i + 1:>2} {label:<18} 1 image: {one} ms (load {result['load']:.1f})", flush=True)
    report = {label: summary(label, r) for label, r in runs.items()}
    for label, r in runs.items():
        print(f"\n{label}, within each table:")
        report[label]["within_a_table"] = within_a_table(r)
        said = phrases(r)
        print(f"  the reading says the Student " + "; ".join(
            f"{s.removeprefix('answers one image ')} x{said.count(s)}" for s in dict.fromkeys(said)))
        report[label]["phrases"] = said
    if args.out:
        args.out.write_text(json.dumps({"runs": runs, "summary": report}, indent=2))


if __name__ == "__main__":
    main()
