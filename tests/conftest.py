"""Shared set-up of the project's own tests."""

import contextlib
import os
from pathlib import Path

import pytest

from grader.lab.cores import wait_asleep

# As every process of learnkd does, before PyTorch loads: the tests that grade in this process, and the processes
# they start, share the cores with the other pytest-xdist worker, where spinning threads would slow both.
wait_asleep()

from grader.grading.checking import single_thread  # noqa: E402  (imports PyTorch)

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
# The README's test command names the data relative to the project (LEARNKD_DATA=../shared/data); the tests run
# commands from other folders (a student's repository, a notebook's kernel), which would read it from theirs.
if os.environ.get("LEARNKD_DATA"):
    os.environ["LEARNKD_DATA"] = str(Path(os.environ["LEARNKD_DATA"]).resolve())


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder: $LEARNKD_DATA, else ../shared/data beside the project."""
    folder = Path(os.environ.get("LEARNKD_DATA") or SHARED_DATA)
    if not (folder / "MNIST" / "raw").is_dir():
        pytest.fail(f"real MNIST is needed at {folder}/MNIST/raw (set LEARNKD_DATA)")
    return folder


@pytest.fixture(scope="session")
def shared_judges():
    """For tests that run `learnkd check` in their own process (click's CliRunner): a function giving the click obj
    under which their gradings share one fork server of judges and one zygote (grader.grading.warm_judges), started
    at its first call and kept for the pytest process, as `learnkd watch`'s checks share them. Those tests read how
    a submission is graded and reported; a judge starting on its own is tested by running the real command
    (tests/test_cli.py, tests/test_data.py, tests/test_github_classroom.py). Its judges have the environment of
    the first test that asked: a later test that changed what a judge reads fails here, at once."""
    from grader.cli import WARM_JUDGES
    from grader.grading import sandbox, warm_judges

    def read() -> dict:
        return {k: os.environ.get(k) for k in ("HOME", "XDG_CACHE_HOME", "LEARNKD_DATA", "LEARNKD_POINTS", "TMPDIR")}

    with contextlib.ExitStack() as stack:
        started = []

        def obj() -> dict:
            if not started:
                started.append((stack.enter_context(warm_judges(sandbox.kind())), read()))
            judges, environment = started[0]
            assert read() == environment, "these judges were started with another environment: grade with a judge " \
                                          "of its own (no obj) where a test sets one"
            return {WARM_JUDGES: judges}

        yield obj


@pytest.fixture(scope="module")
def least_timing():
    """For a test module whose commands time models without testing the times (grader.lab.latency, in this
    process): each model timed for its least rounds only, not for ``BUDGET_S`` (a second a batch size)."""
    from grader.lab import latency

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(latency, "BUDGET_S", dict.fromkeys(latency.BATCHES, 0.0))
        yield


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a test module (grader.grading.checking.single_thread): tiny tensors, small models."""
    with single_thread():
        yield



# ---------------------------------------------------------------------------------------------------
# Spreading the suite over pytest-xdist's workers (pyproject's addopts: a worker per core)

# Run first, in this order: the files whose tests take longest, so that no worker starts one of them last.
LONGEST_FIRST = ("test_check_all.py", "test_progress.py", "test_adversarial.py", "test_end_to_end.py",
                 "test_github_classroom.py", "test_report.py", "test_class_report.py", "test_forkserver.py")
# Their tests go to the workers one by one: they share no costly module fixture. Every other file runs whole on
# one worker, so that its module fixtures (a trained teacher, a graded class) are made once.
ONE_BY_ONE = ("test_bank.py", "test_notebook.py", "test_cli.py", "test_watch.py")


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its own order


@pytest.hookimpl(optionalhook=True)  # without pytest-xdist (-p no:xdist) there is no scheduler to make
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class Scheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            file = nodeid.split("::", 1)[0]
            return nodeid if Path(file).name in ONE_BY_ONE else file

        def _reschedule(self, node) -> None:
            # the next unit once the worker is on its last test, not two ahead: a worker holds no long file
            # that another, idle worker could be running
            if not node.shutting_down and self.workqueue and self._pending_of(self.assigned_work[node]) > 1:
                return
            super()._reschedule(node)

    config.option.loadscopereorder = False  # keep the order above, not "most tests first"
    return Scheduling(config, log)
