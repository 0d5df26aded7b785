"""What one grading run is asked to do; written as JSON by the grading flow, read by the judge and its checks."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class GradingRequest:
    path: str = str(Path(__file__).resolve().parent.parent.parent / "solutions")  # the submission folder (the judge: its private copy)
    topics: list[str] = field(default_factory=list)  # topic names; the end-to-end run when "all" is in it
    device: str = "cpu"  # where the end-to-end training runs; the topic checks always run on the CPU
    data_dir: str | None = None  # None: LEARNKD_DATA, then the user cache
    seed: int = 0
    cache_dir: str | None = None  # where a trained teacher is kept between runs; None: no cache
    verbose: bool = False
    display: str | None = None  # the folder as the learner knows it, for messages (default: path)
    notes: dict[str, str] = field(default_factory=dict)  # file -> why it was not copied (a link)
    check_timeout: float = 30.0  # seconds one request to the learner's code may take (a check may make several)

    def to_dict(self) -> dict:
        return asdict(self)
