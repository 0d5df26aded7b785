"""What one grading run is asked to do; written as JSON by the CLI, read by the checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class GradingRequest:
    path: str = str(Path(__file__).resolve().parent.parent / "solutions")  # the submission folder
    topics: list[str] = field(default_factory=list)  # topic names; the end-to-end run when "all" is in it
    device: str = "cpu"  # where the end-to-end training runs; the topic checks always run on the CPU
    data_dir: str | None = None  # None: LEARNKD_DATA, then the user cache
    seed: int = 0
    cache_dir: str | None = None  # where a trained teacher is kept between runs; None: no cache
    verbose: bool = False

    def to_dict(self) -> dict:
        return asdict(self)
