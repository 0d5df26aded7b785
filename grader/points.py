"""Points per check, read from ``points.toml`` (or the file named by $LEARNKD_POINTS)."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

POINTS_FILE = Path(__file__).with_name("points.toml")
POINTS_ENV = "LEARNKD_POINTS"


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


def points_file() -> Path:
    return Path(os.environ.get(POINTS_ENV) or POINTS_FILE)


def points(check_id: str, topic: str) -> float:
    """The points of the check ``check_id`` (a pytest node id, ``test_loss.py::test_x[case]``) of ``topic``."""
    data = _load(str(points_file()))
    base = check_id.split("[")[0]
    checks = data.get("checks", {})
    for key in (check_id, base, base.split("::")[-1]):
        if key in checks:
            return float(checks[key])
    return float(data.get("topics", {}).get(topic, data.get("default", 1.0)))
