"""The course's topics (order, files, titles, hints), read from ``topics.toml``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

TOPICS_FILE = Path(__file__).with_name("topics.toml")
ALL = "all"


@dataclass(frozen=True)
class Topic:
    name: str
    file: str
    title: str
    hints: tuple[str, ...]
    uses_mnist: bool = False  # its checks train on an MNIST subset


@lru_cache(maxsize=1)
def _data() -> dict:
    with open(TOPICS_FILE, "rb") as f:
        return tomllib.load(f)


def topics() -> tuple[Topic, ...]:
    """Every topic, in course order."""
    return tuple(Topic(t["name"], t["file"], t["title"], tuple(t["hints"]), t.get("uses_mnist", False))
                 for t in _data()["topic"])


def schedule() -> dict:
    """The training schedule of the end-to-end runs: batch_size, epochs, lr, T, alpha."""
    return dict(_data()["schedule"])


def trains(name: str) -> bool:
    """Whether grading ``name`` trains models (its checks on an MNIST subset, or `all` end to end)."""
    return name == ALL or get_topic(name).uses_mnist


def topic_names() -> list[str]:
    return [t.name for t in topics()]


def get_topic(name: str) -> Topic:
    for topic in topics():
        if topic.name == name:
            return topic
    raise KeyError(name)


def topic_for_file(filename: str) -> str | None:
    """The topic whose exercises live in ``filename`` (e.g. 'loss.py' -> 'loss'), or None."""
    for topic in topics():
        if topic.file == filename:
            return topic.name
    return None
