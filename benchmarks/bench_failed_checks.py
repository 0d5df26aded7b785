"""What a failed check costs the judge: pytest's own report of the failure (--tb=short) against none (--tb=no).

    python benchmarks/bench_failed_checks.py [--repeats 5] [--topic loss]

The judge explains each failure itself (``grader.grading.judge.explain``) and never reads pytest's report, which
parses the source of every file in the failure's traceback. This grades the untouched exercises of ``--topic``
(every check fails: "not started") and the reference (every check passes), in this process with the judge's own
checks, collector and worker code (tests/in_process.py), once with each pytest flag, alternating, and prints the
median seconds of each: the figures behind the judge's ``--tb=no`` (``grader.grading.judge.pytest_args``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import in_process  # noqa: E402

from grader.course.stubs import EXERCISES, SOLUTIONS  # noqa: E402
from grader.grading import judge  # noqa: E402

OURS = judge.pytest_args


def with_report(style: str):
    """The judge's pytest flags, with pytest's failure reports in ``style``."""
    def args(request, request_file):
        return [a if a != "--tb=no" else f"--tb={style}" for a in OURS(request, request_file)]
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--topic", default="loss")
    args = parser.parse_args()
    seconds: dict[tuple[str, str], list[float]] = {}
    failed: dict[str, int] = {}
    for _ in range(args.repeats):
        for what, folder in (("untouched exercises", EXERCISES), ("reference", SOLUTIONS)):
            for style in ("short", "no"):
                judge.pytest_args = with_report(style)
                start = time.perf_counter()
                with contextlib.redirect_stdout(io.StringIO()):  # pytest's own summary
                    grading = in_process.grade(folder, args.topic)
                seconds.setdefault((what, style), []).append(time.perf_counter() - start)
                failed[what] = sum(r.status == "failed" for r in grading.results)
    judge.pytest_args = OURS
    print(f"`{args.topic}` graded in this process, median of {args.repeats} (seconds):")
    for what in ("untouched exercises", "reference"):
        short, no = (statistics.median(seconds[(what, s)]) for s in ("short", "no"))
        print(f"  {what:20s} ({failed[what]:2d} checks fail)  --tb=short {short:6.2f}   --tb=no {no:6.2f}   "
              f"({no / short:.2f}x)")


if __name__ == "__main__":
    main()
