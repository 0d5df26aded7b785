"""Shared set-up of the project's own tests."""

import fcntl
import os
import pickle
from pathlib import Path

import pytest

from grader.grading.checking import single_thread

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The real MNIST folder: $LEARNKD_DATA, else ../shared/data beside the project."""
    folder = Path(os.environ.get("LEARNKD_DATA") or SHARED_DATA)
    if not (folder / "MNIST" / "raw").is_dir():
        pytest.fail(f"real MNIST is needed at {folder}/MNIST/raw (set LEARNKD_DATA)")
    return folder


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a test module (grader.grading.checking.single_thread): tiny tensors, small models."""
    with single_thread():
        yield


@pytest.fixture(scope="session")
def reference_check_all(tmp_path_factory, mnist_dir):
    """`learnkd check all --solutions` once for the whole run, with a teacher cache of its own: (the grading, the
    cache folder holding the reference's trained teacher). Tests that need a second run take the teacher from
    it instead of training their own (minutes). Under pytest-xdist the first worker to ask runs it while the
    others wait on a lock, then read its pickled outcome."""
    from grader.course.stubs import SOLUTIONS
    from grader.course.topics import ALL
    from grader.grading import run_grading
    from grader.grading.request import GradingRequest

    # the folder this run's workers share (each worker's own base folder sits in it); alone, this run's own
    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent
    cache, outcome = shared / "reference-teacher-cache", shared / "reference-check-all.pickle"
    with open(shared / "reference-check-all.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not outcome.is_file():
            cache.mkdir(exist_ok=True)
            request = GradingRequest(path=str(SOLUTIONS), topics=[ALL], data_dir=str(mnist_dir), cache_dir=str(cache))
            outcome.write_bytes(pickle.dumps(run_grading(request, quiet=True)))
        return pickle.loads(outcome.read_bytes()), cache
