"""CPU latency of the comparison's models, measured so that the figures compare, and said honestly.

One method for every model and every command (`learnkd check all` on the graphs the judge runs,
`learnkd reference` / `report` on the trained modules):

- one torch thread (``THREADS``), the same for every model: the cost of one request on one core, and no
  OpenMP threads fighting each other or other processes on a busy machine;
- the same input for every model (a fixed random batch), a warm-up of ``WARMUP_CALLS`` calls each;
- the models interleaved: each round times one call of every model, in an order that rotates from round to
  round, so a burst of load elsewhere on the machine falls on every model alike rather than on whichever was
  measured last; rounds go on until ``BUDGET_S`` is spent (between ``MIN_ROUNDS`` and ``MAX_ROUNDS``);
- the median of the calls, and their spread, the interquartile range (IQR: the middle half of the calls),
  taken once the machine's changes of speed are set aside (``summarise_rounds``). A shared or virtual
  machine changes speed now and then, all models at once: within one run, every call went from 0.9 ms to
  0.5 ms between two rounds, the Students' from 0.55 to 0.29 ms. Such a step widens every model's spread
  without making the comparison any less sound, so each round's calls are scaled by how fast the machine
  ran around that round (all models' calls, over the nearest rounds) before the quartiles are taken; what
  is left is each model's own scatter, such as a call cut in two by another process;
- a figure whose IQR is wider than ``NOISY_SPREAD`` of its median is not trusted: it is shown as "noisy"
  (a busy machine: other processes took the core in the middle of the calls), not as a number.

benchmarks/bench_latency.py runs the comparison 10 times, quiet and with two busy processes beside it, and
counts how often the figures stay within the spread they claim. On a shared 2-core machine: within a table
they compare (the two identical students within the spread claimed in 20 of 20 runs, the Teacher / Student
ratio for one image 1.71-1.87x), while from one run (one process) to the next all three move together by up
to ±25%, quiet or not, which the spread of one run's calls does not show: the table's note says so.
"""

from __future__ import annotations

import gc
import statistics
import time
from dataclasses import dataclass
from typing import Callable

import torch

THREADS = 1
BATCHES = (1, 1000)  # one image (an app, a web request) and a large batch (offline scoring)
# Per batch size: warm-up calls of each model, the fewest and most rounds, and the seconds of timed calls
# (all models together) after which no new round starts. A Teacher's 1,000-image call takes 0.1-0.4 s on one
# thread, over 1 s on a loaded 2-core machine: few rounds there, many for single images (0.1-1 ms a call).
WARMUP_CALLS = {1: 3, 1000: 1}
MIN_ROUNDS = {1: 15, 1000: 5}
MAX_ROUNDS = 400
BUDGET_S = {1: 1.0, 1000: 1.0}
# Relative spread above which a median is not shown: the IQR wider than this share of the median. Quiet, the
# 1-image calls of one run spread by 10-45% of the median (benchmarks/bench_latency.py, IQR); with other jobs
# at load average 5 on a 2-core machine, the Teacher's spread to 10 times its median when the core is taken
# away in the middle of its calls (9 of 10 runs "noisy" then).
NOISY_SPREAD = 0.5
NOISY = "noisy"
LEVEL_WINDOW = 5  # rounds each side over which the machine's speed is taken (summarise_rounds)


@dataclass
class Latency:
    """One model's time per call at one batch size, in ms: the median, the quartiles, how many calls."""
    median_ms: float
    q1_ms: float
    q3_ms: float
    calls: int

    @property
    def iqr_ms(self) -> float:
        return self.q3_ms - self.q1_ms

    @property
    def noisy(self) -> bool:
        return noisy(self.median_ms, self.iqr_ms)

    def text(self, digits: int = 2) -> str:
        """'0.25 ± 0.01 ms' (the median ± half the IQR), or 'noisy'."""
        return spread_text(self.median_ms, self.iqr_ms, digits)


def noisy(median_ms: float, iqr_ms: float) -> bool:
    return not (median_ms > 0) or iqr_ms > NOISY_SPREAD * median_ms


def spread_text(median_ms: float, iqr_ms: float | None, digits: int = 2, unit: str = " ms") -> str:
    """A median and its spread as the tables print them: 'median ± IQR/2' with the unit, or 'noisy'."""
    if iqr_ms is None:
        return f"{median_ms:.{digits}f}{unit}"
    if noisy(median_ms, iqr_ms):
        return NOISY
    return f"{median_ms:.{digits}f} ± {iqr_ms / 2:.{digits}f}{unit}"


def summarise(times_s: list[float]) -> Latency:
    """The median and quartiles of call times given in seconds, in ms."""
    ms = sorted(t * 1000 for t in times_s)
    if len(ms) < 2:
        return Latency(ms[0], ms[0], ms[0], len(ms))
    q1, median, q3 = statistics.quantiles(ms, n=4, method="inclusive")
    return Latency(median, q1, q3, len(ms))


def summarise_rounds(times_s: dict[str, list[float]]) -> dict[str, Latency]:
    """Each model's median call (in ms) and the quartiles of its calls once every round is scaled by how fast
    the machine ran it (``times_s``: name -> one call per round, the rounds in the same order for every model).
    With a single model there is nothing to scale by: its own quartiles."""
    names = list(times_s)
    rounds = min((len(t) for t in times_s.values()), default=0)
    if len(names) < 2 or rounds < 2 or any(t <= 0 for n in names for t in times_s[n][:rounds]):
        return {name: summarise(samples) for name, samples in times_s.items()}
    # How slow each round ran: the geometric mean over the models of a call's time against that model's
    # median; then the median of that over the nearest rounds (LEVEL_WINDOW each side): a change of speed
    # lasts, a call cut short by another process does not, and so does not move the level.
    medians = {n: statistics.median(times_s[n][:rounds]) for n in names}
    ratios = [statistics.geometric_mean([times_s[n][r] / medians[n] for n in names]) for r in range(rounds)]
    levels = [statistics.median(ratios[max(0, r - LEVEL_WINDOW):r + LEVEL_WINDOW + 1]) for r in range(rounds)]
    out = {}
    for name in names:
        raw = summarise(times_s[name][:rounds])
        steady = summarise([times_s[name][r] / levels[r] for r in range(rounds)])
        scale = raw.median_ms / steady.median_ms
        out[name] = Latency(raw.median_ms, steady.q1_ms * scale, steady.q3_ms * scale, raw.calls)
    return out


def measure(models: dict[str, dict[int, Callable]], batches=BATCHES, budget_s: dict[int, float] | None = None,
            clock: Callable[[], float] = time.perf_counter) -> dict[str, dict[int, Latency]]:
    """Latency of each model at each batch size, the models interleaved, on ``THREADS`` thread(s).

    ``models``: name -> batch size -> a function that runs the model on one batch of that size (a model
    without one at a batch size is not measured there). Returns name -> batch size -> Latency.
    """
    budget_s = {**BUDGET_S, **(budget_s or {})}
    result: dict[str, dict[int, Latency]] = {name: {} for name in models}
    threads, enabled = torch.get_num_threads(), gc.isenabled()
    torch.set_num_threads(THREADS)
    gc.disable()
    try:
        with torch.no_grad():
            for batch in batches:
                runs = {name: fns[batch] for name, fns in models.items() if fns.get(batch) is not None}
                if not runs:
                    continue
                x = torch.randn(batch, 1, 28, 28, generator=torch.Generator().manual_seed(batch))
                for fn in runs.values():
                    for _ in range(WARMUP_CALLS.get(batch, 1)):
                        fn(x)
                times = interleaved(runs, x, budget_s.get(batch, 1.0), clock, MIN_ROUNDS.get(batch, 5))
                for name, timed in summarise_rounds(times).items():
                    result[name][batch] = timed
    finally:
        torch.set_num_threads(threads)
        if enabled:
            gc.enable()
    return result


def interleaved(runs: dict[str, Callable], x, budget_s: float, clock, min_rounds: int) -> dict[str, list[float]]:
    """Rounds of one timed call of every model, the order rotating; until the budget is spent."""
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in names}
    spent, rounds = 0.0, 0
    while rounds < min_rounds or (spent < budget_s and rounds < MAX_ROUNDS):
        for i in range(len(names)):
            name = names[(rounds + i) % len(names)]
            start = clock()
            runs[name](x)
            elapsed = clock() - start
            times[name].append(elapsed)
            spent += elapsed
        rounds += 1
    return times
