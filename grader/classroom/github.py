"""GitHub Classroom: the workflow that grades a student's repository with GitHub Actions.

A student repository made from the assignment's template holds ``exercises/`` at its root. On every push,
``.github/workflows/classroom.yml`` installs learnkd and MNIST, then runs one autograding step per topic
(``classroom-resources/autograding-command-grader@v1`` running ``learnkd check TOPIC``: all of the topic's
points when every check passes, none otherwise), and the reporter step that sends the points to GitHub
Classroom. A topic's points are the sum of its checks' points in ``grader/course/points.toml`` (the same
table as `learnkd grade` and Gradescope), so a class graded either way adds up to the same total.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

from grader.course.points import points
from grader.course.topics import ALL, topic_names
from grader.grading.judge import CHECKS_DIR

WORKFLOW_PATH = Path(".github") / "workflows" / "classroom.yml"
INSTALL_SPEC = "learnkd @ git+https://github.com/learnkd/learnkd.git"
TORCH_INDEX = "https://download.pytorch.org/whl/cpu"  # the CPU wheels: a tenth of the download
PYTHON_VERSION = "3.11"
DATA_CACHE = "~/.cache/learnkd/data"  # learnkd's per-user data folder on Linux, where MNIST is downloaded
MINUTES = {ALL: 20}  # per step; a topic's checks take seconds to a minute on a 2-core runner
DEFAULT_MINUTES = 5
PRELOAD_MNIST = "python -c \"from grader.lab.data import load_mnist; load_mnist('train'); load_mnist('test')\""
# GitHub's Ubuntu runners forbid unprivileged user namespaces (AppArmor), which the sandbox needs.
ALLOW_SANDBOX = ("sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 || true\n"
                 "sudo apt-get update && sudo apt-get install -y bubblewrap")

_COLLECT = """
import json, sys
import pytest

from grader.grading.session import topic_of

class Topics:
    def __init__(self):
        self.found = []
    def pytest_collection_finish(self, session):
        for item in session.items:
            self.found.append([item.nodeid.split("/")[-1], topic_of(item)])

plugin = Topics()
code = pytest.main([sys.argv[1], "--collect-only", "-q", "-p", "no:cacheprovider", "--rootdir", sys.argv[1],
                    "-c", sys.argv[1] + "/pytest.ini"], plugins=[plugin])
print("LEARNKD-CHECKS " + json.dumps(plugin.found))
sys.exit(0 if code == 0 else 1)
"""


class ClassroomError(Exception):
    """The workflow cannot be written: one paragraph."""


@functools.lru_cache(maxsize=1)
def collected_checks() -> tuple[tuple[str, str], ...]:
    """Every check as (id, topic): collected, not run, in a process of its own (it imports PyTorch: seconds), once
    a process, as the checks are the installed grader's."""
    proc = subprocess.run([sys.executable, "-c", _COLLECT, str(CHECKS_DIR)],
                          capture_output=True, text=True)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("LEARNKD-CHECKS ")), None)
    if proc.returncode != 0 or line is None:
        raise ClassroomError(f"The checks in {CHECKS_DIR} could not be collected to count their points: "
                             f"{(proc.stdout + proc.stderr).strip()[-500:]}")
    return tuple((check_id, topic) for check_id, topic in json.loads(line[len("LEARNKD-CHECKS "):]))


def topic_points() -> dict[str, float]:
    """Each topic's points: the sum of the points of its checks, from the points file (``points``)."""
    totals = {name: 0.0 for name in [*topic_names(), ALL]}
    for check_id, topic in collected_checks():
        if topic in totals:
            totals[topic] += points(check_id, topic)
    return totals


def score(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 2)


def step_id(topic: str) -> str:
    return f"learnkd-{topic}"


def workflow(totals: dict[str, float], install: str = INSTALL_SPEC) -> dict:
    """The workflow as data (what ``yaml.safe_dump`` writes)."""
    graded = [t for t in [*topic_names(), ALL] if totals.get(t)]
    steps = [
        {"name": "Check out the repository", "uses": "actions/checkout@v4"},
        {"name": "Set up Python", "uses": "actions/setup-python@v5", "with": {"python-version": PYTHON_VERSION}},
        {"name": "Cache MNIST", "uses": "actions/cache@v4", "with": {"path": DATA_CACHE, "key": "learnkd-mnist-1"}},
        {"name": "Let the sandbox run", "run": ALLOW_SANDBOX},
        {"name": "Install learnkd", "run": f"python -m pip install torch torchvision --index-url {TORCH_INDEX}\n"
                                           f"python -m pip install \"{install}\""},
        {"name": "Download MNIST (once; then from the cache)", "run": PRELOAD_MNIST},
    ]
    for topic in graded:
        steps.append({
            "name": f"learnkd check {topic}", "id": step_id(topic),
            "uses": "classroom-resources/autograding-command-grader@v1",
            "with": {"test-name": topic, "setup-command": "", "command": f"learnkd check {topic}",
                     "timeout": MINUTES.get(topic, DEFAULT_MINUTES), "max-score": score(totals[topic])},
        })
    steps.append({
        "name": "Autograding Reporter", "uses": "classroom-resources/autograding-grading-reporter@v1",
        # the reporter reads each runner's result from "<RUNNER, upper-cased>_RESULTS" (hyphens kept)
        "env": {f"{step_id(t).upper()}_RESULTS": "${{steps.%s.outputs.result}}" % step_id(t) for t in graded},
        "with": {"runners": ",".join(step_id(t) for t in graded)},
    })
    return {
        "name": "Autograding Tests",
        "on": ["push", "repository_dispatch", "workflow_dispatch"],
        "permissions": {"checks": "write", "actions": "read", "contents": "read"},
        "jobs": {"run-autograding-tests": {
            "runs-on": "ubuntu-latest",
            "if": "github.actor != 'github-classroom[bot]'",
            "steps": steps,
        }},
    }


def write_workflow(out: Path, force: bool = False, install: str = INSTALL_SPEC) -> Path:
    """``out/.github/workflows/classroom.yml``, written whole (a temporary file renamed); ClassroomError when it
    exists and ``force`` is not given."""
    import yaml

    path = Path(out) / WORKFLOW_PATH
    if path.exists() and not force:
        raise ClassroomError(f"{path} exists already: give --force to replace it (your version is then kept as "
                             f"{path.name}.bak), or another --out.")
    class Dumper(yaml.SafeDumper):
        pass

    def strings(dumper, value: str):  # a multi-line command as a block, as people write workflows
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    Dumper.add_representer(str, strings)
    text = ("# Written by `learnkd github-classroom`: GitHub Classroom's autograding for the learnkd lab.\n"
            "# Points per topic: the sum of its checks' points in learnkd's points.toml.\n"
            + yaml.dump(workflow(topic_points(), install), Dumper=Dumper, sort_keys=False, width=120))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.learnkd-tmp")
    partial.write_text(text)
    if path.exists():
        path.replace(path.with_name(path.name + ".bak"))  # the one before it, replacing an older backup
    partial.replace(path)
    return path
