"""The comparison's latency (grader.lab.latency) and how the table and its reading say it.

The figures here come from a fake clock: what is tested is the method (one thread, warm-up, the models
interleaved, the median and the interquartile range, "noisy" past the threshold) and the words, never a time.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from grader.lab import latency
from grader.grading.end_to_end import training_threads
from grader.lab.cores import threads_for_load
from grader.lab.pipeline import DISTILLED, HARD, TEACHER, ModelReport, comparison_table
from grader.lab.report import EXPERIMENT_HINT, comparison_text, reading


class FakeClock:
    """perf_counter for latency.measure: each model's call takes the next of its made-up durations."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def model(clock: FakeClock, durations_ms, log: list, name: str, threads: list):
    durations = iter(durations_ms)

    def run(x):
        log.append((name, x.shape[0]))
        threads.append(torch.get_num_threads())
        clock.now += next(durations, durations_ms[-1]) / 1000

    return run


def test_models_are_timed_interleaved_on_one_thread_after_a_warm_up():
    clock, log, threads = FakeClock(), [], []
    fns = {name: model(clock, [1.0], log, name, threads) for name in "abc"}
    before = torch.get_num_threads()
    result = latency.measure({name: {1: fn} for name, fn in fns.items()}, batches=(1,), budget_s={1: 0.0},
                             clock=clock)
    assert torch.get_num_threads() == before, "the thread count is put back"
    assert set(threads) == {latency.THREADS}
    calls = latency.WARMUP_CALLS[1]
    warm = 3 * calls
    assert [n for n, _ in log[:warm]] == ["a"] * calls + ["b"] * calls + ["c"] * calls
    rounds = [tuple(n for n, _ in log[warm + 3 * r: warm + 3 * r + 3]) for r in range(3)]
    assert rounds == [("a", "b", "c"), ("b", "c", "a"), ("c", "a", "b")], "the order rotates from round to round"
    assert all(result[n][1].calls == latency.MIN_ROUNDS[1] for n in "abc")
    assert result["a"][1].median_ms == pytest.approx(1.0) and result["a"][1].iqr_ms == pytest.approx(0.0)


def test_the_median_and_the_interquartile_range_of_the_calls():
    timed = latency.summarise([t / 1000 for t in [10, 11, 12, 13, 14, 15, 16, 17, 100]])
    assert timed.median_ms == pytest.approx(14.0), "one slow call does not move the median"
    assert (timed.q1_ms, timed.q3_ms) == (pytest.approx(12.0), pytest.approx(16.0))
    assert timed.text() == "14.00 ± 2.00 ms" and not timed.noisy


def test_a_spread_too_wide_to_trust_is_said_instead_of_a_number():
    steady = latency.summarise([t / 1000 for t in [1.0, 1.0, 1.1, 1.1, 1.2]])
    assert not steady.noisy and steady.text().startswith("1.10 ±")
    busy = latency.summarise([t / 1000 for t in [0.1, 0.1, 0.2, 3.0, 5.0]])  # the core taken in mid-call
    assert busy.noisy and busy.text() == latency.NOISY


def test_a_model_without_a_function_at_a_batch_size_is_not_timed_there():
    clock, log = FakeClock(), []
    result = latency.measure({"a": {1: model(clock, [1.0], log, "a", []), 1000: None},
                              "b": {1: model(clock, [2.0], log, "b", []), 1000: model(clock, [9.0], log, "b", [])}},
                             budget_s={1: 0.0, 1000: 0.0}, clock=clock)
    assert set(result["a"]) == {1} and set(result["b"]) == {1, 1000}
    assert result["b"][1000].median_ms == pytest.approx(9.0)
    assert {b for n, b in log if n == "a"} == {1}


def reports(one_image_ms: dict[str, tuple[float, float]], distilled=0.9840, hard=0.9835) -> dict[str, ModelReport]:
    """Three made-up reports; ``one_image_ms``: name -> (median, IQR) of the 1-image latency."""
    figures = {TEACHER: (0.9921, 409_386, 1599.6, 1.0), DISTILLED: (distilled, 9_274, 36.4, 0.989),
               HARD: (hard, 9_274, 36.4, 0.986)}
    out = {}
    for name, (acc, params, size, agrees) in figures.items():
        median, iqr = one_image_ms[name]
        out[name] = ModelReport(name, acc, params, size, 40.0 if name == DISTILLED else 20.0, [0.3, 0.1],
                                agreement=agrees, latency_ms={1: median, 1000: 50.0},
                                latency_iqr_ms={1: iqr, 1000: 2.0})
    return out


def test_the_table_shows_the_median_and_its_spread_or_noisy():
    table = comparison_table(reports({TEACHER: (0.50, 0.04), DISTILLED: (0.12, 0.02), HARD: (0.12, 0.5)}))
    lines = table.splitlines()
    assert "1 image" in lines[0]
    assert "0.50 ± 0.02 ms" in lines[1] and "0.12 ± 0.01 ms" in lines[2]
    assert lines[3].split()[-3] == latency.NOISY and " ms" not in lines[3]


def test_check_all_says_what_agrees_means_and_ends_with_the_reading_of_learnkd_reference():
    made = reports({TEACHER: (0.50, 0.04), DISTILLED: (0.12, 0.02), HARD: (0.12, 0.02)})
    text = comparison_text(made, 60_000, 10_000)
    flat = " ".join(text.split())
    assert "agrees: the share of the 10,000 test images whose predicted class is the teacher's." in flat
    assert "interquartile range" in flat and f'"{latency.NOISY}"' in flat
    sentence = reading(made, 60_000)
    assert sentence and " ".join(sentence.split()) in flat, "the same sentence as learnkd reference prints"
    assert "within the run-to-run noise" in sentence and "no measurable gain" in sentence
    assert "answers one image 4.2x faster" in sentence
    assert flat.endswith(" ".join(EXPERIMENT_HINT.split())), "it ends pointing to learnkd experiment"
    assert all(len(line) <= 110 for line in text.splitlines()[4:])


@pytest.mark.parametrize("student, words", [
    ((0.48, 0.04), "about as fast"),   # within the spread of the two
    ((0.90, 0.04), "1.8x slower"),
    ((0.10, 0.90), "too noisy to compare"),
])
def test_the_reading_claims_a_speed_only_as_far_as_the_measurement_carries(student, words):
    made = reports({TEACHER: (0.50, 0.04), DISTILLED: student, HARD: (0.12, 0.02)})
    assert words in reading(made, 60_000)


def test_no_reading_without_the_three_models():
    made = reports({TEACHER: (0.50, 0.04), DISTILLED: (0.12, 0.02), HARD: (0.12, 0.02)})
    del made[HARD]
    assert reading(made, 60_000) is None
    assert "agrees:" in comparison_text(made, 60_000, 10_000)


def remote_with(threads: int):
    return SimpleNamespace(process=SimpleNamespace(settings=SimpleNamespace(threads=threads)))


@pytest.mark.parametrize("threads, machine, busy, expected", [
    (2, 2, 0.0, 2),    # an idle 2-core machine: both (the judge measures between trainings)
    (2, 2, 1.0, 1),    # one busy process beside it: the idle core only
    (2, 2, 2.0, 1),
    (8, 8, 0.1, 8),    # idle: every core
    (8, 8, 3.0, 5),    # three busy processes: the idle cores only
    (8, 8, 7.9, 1),    # never fewer than one
    (1, 8, 0.0, 1),    # the worker's own count (the project's tests: 1) caps it
])
def test_the_training_thread_count_follows_the_idle_cores(threads, machine, busy, expected):
    assert training_threads(remote_with(threads), busy=busy, machine=machine) == expected


@pytest.mark.parametrize("machine, busy, expected", [(2, 0.1, 2), (2, 1.0, 1), (2, 3.5, 1), (8, 2.5, 5)])
def test_learnkd_reference_trains_on_the_idle_cores(machine, busy, expected):
    assert threads_for_load(machine, busy=busy, machine=machine) == expected


def test_a_change_of_speed_that_every_model_meets_alike_does_not_widen_the_spread():
    # halfway through, the machine runs every call at half the speed (a virtual CPU moved, a clock changed)
    teacher = [0.50e-3] * 20 + [1.00e-3] * 20
    student = [0.30e-3] * 20 + [0.60e-3] * 20
    raw = latency.summarise(teacher)
    assert raw.noisy, "the calls alone spread over half their median"
    timed = latency.summarise_rounds({"teacher": teacher, "student": student})
    assert timed["teacher"].median_ms == pytest.approx(raw.median_ms), "the figure is the calls' median"
    assert timed["teacher"].iqr_ms == pytest.approx(0.0, abs=1e-9) and not timed["teacher"].noisy
    assert timed["student"].iqr_ms == pytest.approx(0.0, abs=1e-9)


def test_calls_of_one_model_cut_by_other_processes_still_count_as_noisy():
    students = [0.30e-3] * 40
    teacher = [0.50e-3, 0.50e-3, 2.50e-3] * 13 + [0.50e-3]  # every third call loses the core for 2 ms
    timed = latency.summarise_rounds({"teacher": teacher, "distilled": students, "hard": list(students)})
    assert timed["teacher"].noisy
    assert not timed["distilled"].noisy and timed["distilled"].iqr_ms == pytest.approx(0.0, abs=1e-9), \
        "the Teacher's lost calls do not spill onto the others"
