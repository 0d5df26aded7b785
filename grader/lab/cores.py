"""How many cores other processes leave idle now, and so how many torch threads a training should take
(``learnkd reference`` and ``report`` here; `check all`'s worker through
``grader.grading.end_to_end.training_threads``); and how those threads wait for work."""

from __future__ import annotations

import math
import os
import time


IDLE_SLACK = 0.25  # of a core: less busy than this counts as idle (threads_for_load)
# OpenMP's threads (PyTorch's on the CPU) spin on their core while they wait for work, unless told to sleep. Alone,
# a training step takes as long either way and burns a fifth less CPU asleep; two trainings side by side on a
# 2-core machine (`learnkd grade --jobs 2`, or a browser beside `check all`) each take half as long
# (benchmarks/bench_wait_policy.py). Every process of learnkd that runs PyTorch waits asleep, unless the
# user set OMP_WAIT_POLICY.
WAIT_POLICY, WAIT_ASLEEP = "OMP_WAIT_POLICY", "PASSIVE"


def wait_asleep(env: dict | None = None) -> dict:
    """Set OMP_WAIT_POLICY=PASSIVE in ``env`` (default: this process's environment, before PyTorch is imported:
    OpenMP reads it once, when it loads) unless it is set; return ``env``."""
    env = os.environ if env is None else env
    env.setdefault(WAIT_POLICY, WAIT_ASLEEP)
    return env


def busy_cores(seconds: float = 0.2) -> float:
    """How many cores other processes keep busy now: /proc/stat over ``seconds`` (else the load average)."""
    def sample():
        with open("/proc/stat") as f:
            fields = [float(v) for v in f.readline().split()[1:]]
        return sum(fields), fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # all, idle + iowait
    try:
        total0, idle0 = sample()
        time.sleep(seconds)
        total1, idle1 = sample()
        cores = os.cpu_count() or 1
        return cores * (1.0 - (idle1 - idle0) / max(total1 - total0, 1e-9))
    except (OSError, ValueError, IndexError):
        try:
            return os.getloadavg()[0]
        except (AttributeError, OSError):
            return 0.0


def threads_for_load(most: int, busy: float | None = None, machine: int | None = None) -> int:
    """The cores other processes leave idle now, between 1 and ``most`` (``training_threads``; `learnkd
    reference` and `report`, which train in their own process, take every idle core). Rounded down, but the
    last quarter of a core counts as idle: daemons and the sampling itself keep an idle machine ~0.1 busy."""
    if most <= 1:
        return 1
    busy = busy_cores() if busy is None else busy
    machine = machine or os.cpu_count() or most
    return max(1, min(most, math.floor(machine - busy + IDLE_SLACK)))
