"""Points per check, read from ``points.toml`` (or the file named by $LEARNKD_POINTS).

A file that cannot be read or is not laid out as ``points.toml`` describes is a ``PointsError``: one
paragraph for the instructor (exit code 2 from the commands), never a traceback.
"""

from __future__ import annotations

import math
import os
from functools import lru_cache
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

POINTS_FILE = Path(__file__).with_name("points.toml")
POINTS_ENV = "LEARNKD_POINTS"


class PointsError(Exception):
    """The points file is missing or malformed; the message says which file, what is wrong, and how to fix it."""


def _number(value, where: str, key: str, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise PointsError(f"{path}: {where} is {value!r}, but points are numbers of 0 or more (e.g. {key} = 2.5).")
    return float(value)


def _validate(data: dict, path: str) -> dict:
    table = {"default": _number(data.get("default", 1.0), "default", "default", path), "topics": {}, "checks": {}}
    unknown = sorted(set(data) - {"default", "topics", "checks"})
    if unknown:
        raise PointsError(f"{path}: {', '.join(unknown)} is not a setting of the points file; it holds "
                          "default = N, a [topics] table and a [checks] table.")
    for section in ("topics", "checks"):
        entries = data.get(section, {})
        if not isinstance(entries, dict):
            raise PointsError(f"{path}: {section} must be a table ([{section}] followed by name = points lines), "
                              f"not {type(entries).__name__}.")
        for key, value in entries.items():
            table[section][key] = _number(value, f"{key} in [{section}]", key, path)
    return table


@lru_cache(maxsize=4)
def _load(path: str) -> dict:
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise PointsError(f"The points file {path} does not exist. Point ${POINTS_ENV} at an existing file, or "
                          f"unset it to use {POINTS_FILE}.") from None
    except (OSError, UnicodeDecodeError) as err:
        raise PointsError(f"The points file {path} cannot be read ({err}). Fix its permissions, or point "
                          f"${POINTS_ENV} at another file.") from None
    except tomllib.TOMLDecodeError as err:
        raise PointsError(f"The points file {path} is not valid TOML ({err}). Fix that line (the comments at "
                          f"the top of {POINTS_FILE} describe the layout) and grade again.") from None
    try:
        return _validate(data, path)
    except PointsError as err:
        raise PointsError(f"The points file is malformed: {err} Fix it (the comments at the top of "
                          f"{POINTS_FILE} describe the layout) and grade again.") from None


def points_file() -> Path:
    return Path(os.environ.get(POINTS_ENV) or POINTS_FILE)


def load_points() -> dict:
    """The points table ({"default", "topics", "checks"}), validated; a PointsError says what is wrong."""
    return _load(str(points_file()))


def points(check_id: str, topic: str) -> float:
    """The points of the check ``check_id`` (a pytest node id, ``test_loss.py::test_x[case]``) of ``topic``."""
    data = load_points()
    base = check_id.split("[")[0]
    checks = data["checks"]
    for key in (check_id, base, base.split("::")[-1]):
        if key in checks:
            return checks[key]
    return data["topics"].get(topic, data["default"])
