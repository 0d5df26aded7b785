"""Fixtures every hidden check uses: the grading request, the reference, the learner's submission.

The checks run in the judge. ``submission`` is not the learner's code but ``grader.grading.remote.Remote``:
its functions run in the worker, in the sandbox, and return plain data.
"""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from grader.grading.checking import single_thread
from grader.grading import session
from grader.grading.request import GradingRequest
from grader.course.topics import ALL, topic_names


def pytest_addoption(parser):
    parser.addoption("--learnkd-request", default=None, help="JSON file of a GradingRequest")


def pytest_configure(config):
    for name in topic_names():
        config.addinivalue_line("markers", f"{name}: a check of the topic '{name}'")
    config.addinivalue_line("markers", f"{ALL}: end to end on real MNIST, once every topic passes")
    config.learnkd_failed_topics = set()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    # Remember which topics failed: the end-to-end checks run only when none did.
    report = (yield).get_result()
    if report.failed:
        for name in topic_names():
            if item.get_closest_marker(name):
                item.config.learnkd_failed_topics.add(name)


def pytest_collection_modifyitems(items):
    # The end-to-end run goes last: it needs to know whether every topic passed.
    items.sort(key=lambda item: item.get_closest_marker(ALL) is not None)


@pytest.fixture(scope="session")
def options(pytestconfig) -> GradingRequest:
    if session.request is not None:
        return session.request
    path = pytestconfig.getoption("--learnkd-request")
    if path is None:
        return GradingRequest()
    with open(path) as f:
        return GradingRequest(**json.load(f))


@pytest.fixture(scope="session")
def reference():
    """The reference modules, as ``reference.loss``, ``reference.train``, ..."""
    from solutions import evaluate, loss, models, train

    return SimpleNamespace(models=models, loss=loss, train=train, evaluate=evaluate)


@pytest.fixture(scope="session")
def submission():
    """The learner's modules, as ``submission.loss``, ...: they run in the worker; a file that failed to load
    fails the checks that ask for it."""
    if session.remote is None:
        pytest.fail("the checks run in the judge (python -m grader.grading.judge), which starts the worker")
    return session.remote


@pytest.fixture(autouse=True)
def seeded(options):
    """Every check starts from the same random state, so learner and reference see the same inputs."""
    torch.manual_seed(options.seed)
    yield


@pytest.fixture(scope="module")
def one_thread():
    """The topic checks' modules run on one thread (grader.grading.checking.single_thread); the end-to-end training does not."""
    with single_thread():
        yield
