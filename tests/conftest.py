"""Shared set-up of the project's own tests."""

import os
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

