"""The judge's side of `learnkd check all`: the learner's code trains on MNIST in the worker; the judge measures.

The worker (``grader.worker.pipeline``) trains the learner's Teacher with the learner's train_model,
distils a Student with the learner's distill and trains the same Student on hard labels, on the
training split the judge sends it, and returns each model as an exported graph of aten operations.
The MNIST test split never leaves the judge: it runs each graph here (``graph.Graph``, which refuses
any operation that compares, indexes or looks values up), and the accuracy, the agreement with the
teacher, the parameter count and the size it reports are its own measurements, and so is the CPU latency:
once every model is trained, the judge times each graph, the models interleaved on one thread
(``grader.lab.latency``), the 1-image latency on a second graph the worker exports for a single image, which
must first give the same logits on a few test images. Losses and training seconds come from the worker and
are informational only.

A trained teacher is cached by the judge alone (``grader.lab.teacher_cache``), keyed by every file of the
submission, the schedule, the seed, the device, the data and the torch version; an entry is checked
when read, and its graph is run again on the test set, which must give the accuracy it stores.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor

from grader.course.topics import schedule
from grader.grading.checking import CheckFailed, single_thread
from grader.grading.graph import Graph, GraphError, accuracy
from grader.grading.worker_process import LearnerError, WorkerGone
from grader.lab import latency, teacher_cache
from grader.lab.cores import threads_for_load
from grader.lab.data import load_mnist, load_raw, resolve_data_dir
from grader.lab.pipeline import DISTILLED, HARD, TEACHER, ModelReport

# One training request (the teacher's, the distillation, the hard-label student's): the reference takes
# 15-30 s each on 2 cores; a learner's bigger models or slower loops on a slow 2-core machine get 30x that.
TRAIN_TIMEOUT_S = 900
# Exporting and running a trained model, measuring its latency, loading cached weights.
SHORT_TIMEOUT_S = 120
# A cached teacher's graph, run again on the test set, must give the accuracy stored with it (to a few
# images: convolutions may round differently with another number of threads).
CACHE_ACCURACY_TOLERANCE = 3e-4
# The 1-image graph is only timed. It must first give, one image at a time, the logits of the graph the judge
# measured on the first LATENCY_CHECK_IMAGES test images (to float rounding: another batch size may take
# another convolution algorithm); one that does not gets no 1-image latency.
LATENCY_CHECK_IMAGES = 8
EXPORT_BATCH = 1000  # the batch size of the graph the worker exports for the test set (grader.worker.pipeline)
WHAT = {TEACHER: "your Teacher", DISTILLED: "your distilled Student", HARD: "your Student trained on hard labels"}
DONE = {TEACHER: "your Teacher", DISTILLED: "your distilled Student", HARD: "the Student on hard labels"}
OPS = {TEACHER: "pipeline.teacher", DISTILLED: "pipeline.distil", HARD: "pipeline.hard"}


@dataclass
class Measured:
    """What the judge measured of one returned graph; ``single``: its 1-image graph, when it agrees."""
    graph: Graph
    logits: Tensor
    accuracy: float
    single: Graph | None = None


@dataclass
class EndToEnd:
    """The three models' reports, and for a model the judge could not measure, why (an exception)."""
    reports: dict[str, ModelReport] = field(default_factory=dict)
    problems: dict[str, BaseException] = field(default_factory=dict)
    seconds: float = 0.0
    timeout: float = TRAIN_TIMEOUT_S  # seconds each training request had
    train_examples: int = 0  # images of the training split the models trained on
    test_examples: int = 0  # images of the test split the judge ran them on
    threads: dict[str, int] = field(default_factory=dict)  # torch threads each training request was given

    def report(self, name: str) -> ModelReport:
        """``name``'s report; raises the reason it has none, for the check to fail with."""
        problem = self.problems.get(name)
        if problem is None:
            return self.reports[name]
        if isinstance(problem, WorkerGone) and problem.timeout:
            raise CheckFailed(f"training {WHAT[name]} did not finish within {self.timeout:.0f} s: is there a loop "
                              "that never ends, or is the model far bigger than it needs to be?") from problem
        raise problem


def data_digest(*tensors: Tensor) -> str:
    digest = hashlib.sha256()
    for t in tensors:
        digest.update(str(tuple(t.shape)).encode() + str(t.dtype).encode())
        digest.update(t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()[:32]


def export_problem(name: str, reply: dict) -> GraphError:
    return GraphError(
        f"{WHAT[name]} could not be exported as a graph of operations ({reply.get('export_error')}). The grader "
        "runs your trained model itself on the test set, so the model must be exportable with torch.export: "
        "build it from torch.nn layers, and let forward() take one batch of images and return its logits "
        "without Python branches on the values of tensors.")


def measure(name: str, data, x_test: Tensor, y_test: Tensor, single=None) -> Measured:
    """Check ``data`` as a graph, run it on the test set here, and score it: GraphError when it cannot run.
    ``single``: the model's 1-image graph, kept for timing when it gives the same logits."""
    graph = Graph(data, what=WHAT[name])
    logits = graph(x_test)
    if logits.shape != (len(y_test), 10):
        raise GraphError(f"{WHAT[name]} returned logits of shape {tuple(logits.shape)} for {len(y_test)} test "
                         f"images; they should be ({len(y_test)}, 10)")
    logits = logits.float()
    return Measured(graph, logits, accuracy(logits, y_test), one_image(name, single, x_test, logits))


def one_image(name: str, data, x_test: Tensor, logits: Tensor) -> Graph | None:
    """The 1-image graph, if it checks out and gives ``logits`` on the first test images one by one; else None."""
    if data is None:
        return None
    try:
        graph = Graph(data, what=WHAT[name])
        if graph.batch != 1:
            return None
        n = min(LATENCY_CHECK_IMAGES, len(x_test))
        out = torch.cat([graph.forward(x_test[i:i + 1]) for i in range(n)]).float()
    except (GraphError, RuntimeError, TypeError, ValueError):
        return None
    if out.shape != (n, 10) or not torch.allclose(out, logits[:n], rtol=1e-3, atol=1e-3):
        return None
    return graph


def training_threads(remote, busy: float | None = None, machine: int | None = None) -> int:
    """Torch threads for one of the worker's trainings, chosen when it starts so that a busy machine slows the
    training down gracefully instead of stalling it.

    OpenMP threads wait for each other at the end of every operation; a thread that has lost its core to
    another process holds the others up, so threads beyond the idle cores cost far more than they bring.
    Measured (benchmarks/bench_threads.py, a Teacher training step of batch 128, median of 3, alternating, on
    a shared 2-core machine): idle, 51 ms on 1 thread and 41 ms on 2; with two busy processes beside it, 90 ms
    against 131 ms; while other jobs kept its load average at 4.5-7, 124 ms against 844 ms, and with two more
    busy processes, 447 ms against 1,734 ms (28fc973: 76 ms against 489 ms). A second thread gains a fifth on an
    idle machine and loses up to 7x on a busy one. The rule (``threads_for_load``): the cores other processes
    leave idle now (``busy_cores``), rounded down, never more than the worker was given, at least one. The
    judge measures each model before the next one trains (``Run.measure_now``), so it takes no core from a
    training. An idle 2-core machine trains on 2 threads (`check all --solutions`: 91 s on 1 thread against
    63 s before the judge and the worker were split, which trained on torch's 2); with one busy process
    beside it on 1. ``busy`` and ``machine`` (the cores here) are for the tests.
    """
    settings = getattr(getattr(remote, "process", None), "settings", None)
    cores = getattr(settings, "threads", 1)
    if type(cores) is not int or cores <= 1:
        return 1
    return threads_for_load(cores, busy, machine)


def run(remote, data_dir=None, device: str = "cpu", seed: int = 0, cache_dir=None, folder: Path | None = None,
        progress: bool = False, log: Callable[[str], None] = lambda text: None, limit: int | None = None,
        train_timeout: float = TRAIN_TIMEOUT_S) -> EndToEnd:
    """Train the learner's three models in the worker of ``remote`` and measure them here.

    ``folder``: the submission's files, which key the cached teacher (the judge's private copy);
    ``progress``: the worker shows progress bars on its stderr; ``limit``: train on the first ``limit``
    training images only (the project's tests). The judge runs each returned graph on the test set
    before the worker trains the next model.
    """
    with single_thread():
        return Run(remote, data_dir, device, seed, cache_dir, folder, progress, log, limit, train_timeout).run()


class Run:
    def __init__(self, remote, data_dir, device, seed, cache_dir, folder, progress, log, limit, train_timeout):
        self.remote, self.log, self.timeout = remote, log, train_timeout
        self.start = time.perf_counter()
        self.plan = schedule()
        root, how = resolve_data_dir(data_dir)
        images, labels = load_raw("train", root.resolve(), how)
        if limit is not None:
            images, labels = images[:limit], labels[:limit]
        self.x_test, self.y_test = load_mnist("test", data_dir)
        self.digest = data_digest(images, labels, self.x_test, self.y_test)
        self.data = {"key": self.digest, "images": images, "labels": labels}
        self.base = {"seed": seed, "device": device, "schedule": self.plan, "progress": progress}
        self.result = EndToEnd(timeout=train_timeout, train_examples=len(labels), test_examples=len(self.y_test))
        self.pending: dict[str, tuple[Measured | GraphError, dict, bool]] = {}  # name -> (measured, reply, cached)
        self.teacher_state = None
        self.cache_dir, self.key = cache_dir, None
        if cache_dir and folder is not None:
            self.key = teacher_cache.cache_key(folder, role="judge", schedule=sorted(self.plan.items()), seed=seed,
                                               device=device, data=self.digest, limit=limit)

    def ask(self, name: str, extra: dict, timeout: float) -> dict:
        """One training request; sends the data or the teacher again when the worker says it lacks them."""
        message = {"op": OPS[name], **self.base, "threads": self.result.threads.get(name, 1), "data": {"key": self.digest},
                   **extra}
        for _ in range(3):
            reply = self.remote.ask(message, key=OPS[name], timeout=timeout)
            if not isinstance(reply, dict):
                raise WorkerGone("the worker's reply is not what was asked for")
            need = reply.get("need")
            if not need:
                return reply
            if "data" in need:
                message["data"] = self.data
            if "teacher" in need:
                if self.teacher_state is None:
                    raise CheckFailed("your trained Teacher's state_dict did not come back as tensors, so the "
                                      "worker could not be given it again after it restarted.")
                message["teacher_state"] = self.teacher_state
        raise WorkerGone("the worker kept asking for what it was sent")

    def train(self, step: int, name: str, what: str) -> dict:
        """One training request, said before and after: '(2/3) distilling ...', '(2/3) ... trained in 31 s'."""
        threads = self.result.threads[name] = training_threads(self.remote)
        self.log(f"({step}/3) {what}, on {threads} thread{'s' if threads > 1 else ''}")
        start = time.perf_counter()
        reply = self.ask(name, {}, self.timeout)
        self.log(f"({step}/3) {DONE[name]}: trained in {time.perf_counter() - start:.0f} s")
        return reply

    def measure_now(self, name: str, reply: dict, cached: bool = False, done: Measured | None = None) -> None:
        """Run the model's graph on the test set (or take ``done``, measured already), before the next training
        starts: a measurement beside a training would take a core from it (``training_threads``)."""
        if done is None:
            graph = reply.get("graph")
            try:
                if graph is None:
                    raise export_problem(name, reply)
                done = measure(name, graph, self.x_test, self.y_test, reply.get("latency_graph"))
            except GraphError as err:
                self.pending[name] = (err, reply, cached)
                return
        self.pending[name] = (done, reply, cached)

    def cached_teacher(self) -> bool:
        """Load the teacher from the judge's cache into the worker; False when there is no usable entry."""
        entry = teacher_cache.judge_entry(teacher_cache.load(self.cache_dir, self.key)) if self.key else None
        if entry is None:
            return False
        try:
            done = measure(TEACHER, entry["graph"], self.x_test, self.y_test)
        except GraphError:
            return False
        if abs(done.accuracy - entry["accuracy"]) > CACHE_ACCURACY_TOLERANCE:
            return False  # not what the judge wrote, or not for these test images: train again
        try:
            reply = self.ask(TEACHER, {"cached_state": entry["state_dict"]}, SHORT_TIMEOUT_S)
        except (LearnerError, WorkerGone):
            return False  # the learner's Teacher() does not take the weights back: train it
        self.log("(1/3) your Teacher: the one trained before with this code (the teacher cache)")
        done.single = one_image(TEACHER, reply.get("latency_graph"), self.x_test, done.logits)
        self.teacher_state = entry["state_dict"]
        self.measure_now(TEACHER, {**reply, "losses": entry["losses"], "seconds": entry["seconds"]}, True, done)
        return True

    def run(self) -> EndToEnd:
        plan, result = self.plan, self.result
        self.log(f"end to end on MNIST: 3 models, {plan['epochs']} epochs each on {result.train_examples:,} training "
                 f"images; the grader then runs each one on the {len(self.y_test):,} test images")
        if not self.cached_teacher():
            try:
                reply = self.train(1, TEACHER, "training your Teacher with your train_model")
            except (LearnerError, WorkerGone) as err:
                result.problems[TEACHER] = err
                for name in (DISTILLED, HARD):
                    result.problems[name] = teacher_failed(err)
                result.seconds = time.perf_counter() - self.start
                return result
            state = reply.get("state_dict")
            self.teacher_state = state if teacher_cache.plain_state_dict(state) else None
            self.measure_now(TEACHER, reply)
        for step, name, what in (
                (2, DISTILLED, f"distilling your Student from it with your distill (T={plan['T']}, alpha={plan['alpha']})"),
                (3, HARD, "training the same Student on hard labels only, with your train_model")):
            try:
                self.measure_now(name, self.train(step, name, what))
            except (LearnerError, WorkerGone, CheckFailed) as err:
                result.problems[name] = err
        self.finish()
        result.seconds = time.perf_counter() - self.start
        self.log(f"end to end: done in {result.seconds:.0f} s")
        return result

    def finish(self) -> None:
        """The reports of the measured models; the latencies; the trained teacher into the cache."""
        measured: dict[str, Measured] = {}
        for name in (TEACHER, DISTILLED, HARD):
            if name not in self.pending:
                continue
            done, reply, cached = self.pending[name]
            if isinstance(done, GraphError):
                self.result.problems[name] = CheckFailed(str(done))
                continue
            measured[name] = done
            teacher = measured.get(TEACHER)
            agreement = (done.logits.argmax(1) == teacher.logits.argmax(1)).float().mean().item() if teacher else None
            raw, seconds = reply.get("losses"), reply.get("seconds")
            losses = [v if type(v) is float else None for v in raw] if type(raw) is list else []
            seconds = float(seconds) if type(seconds) in (int, float) else 0.0
            self.result.reports[name] = ModelReport(name, done.accuracy, done.graph.weights(), done.graph.size_kb(),
                                                    seconds, losses, cached, agreement=agreement)
        self.time_models(measured)
        teacher = self.result.reports.get(TEACHER)
        if self.key and teacher is not None and not teacher.cached and self.teacher_state is not None:
            graph = self.pending[TEACHER][1].get("graph")
            if teacher_cache.plain_data(graph):
                teacher_cache.save(self.cache_dir, self.key, {
                    "version": teacher_cache.ENTRY_VERSION, "state_dict": self.teacher_state, "graph": graph,
                    "accuracy": teacher.accuracy, "losses": teacher.losses, "seconds": teacher.train_seconds})

    def time_models(self, measured: dict[str, Measured]) -> None:
        """Every model's latency, now that nothing trains: the same conditions for all (``grader.lab.latency``)."""
        timed = {name: {1: done.single.forward if done.single is not None else None,
                        EXPORT_BATCH: done.graph.forward if done.graph.batch == EXPORT_BATCH else None}
                 for name, done in measured.items()}
        if not any(f for fns in timed.values() for f in fns.values()):
            return
        self.log(f"timing the models: 1 image and {EXPORT_BATCH:,} images, interleaved, on one thread")
        for name, by_batch in latency.measure(timed, batches=(1, EXPORT_BATCH)).items():
            report = self.result.reports[name]
            report.latency_ms = {b: t.median_ms for b, t in by_batch.items()}
            report.latency_iqr_ms = {b: t.iqr_ms for b, t in by_batch.items()}


def teacher_failed(err: BaseException) -> CheckFailed:
    failed = CheckFailed("your Teacher could not be trained (see the Teacher's check), so no Student was trained "
                         "from it.")
    failed.__cause__ = err
    return failed
