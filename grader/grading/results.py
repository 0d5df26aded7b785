"""The results of one grading run: per check, per topic, and as the learner and Gradescope see them."""

from __future__ import annotations

from dataclasses import dataclass, field

from grader.course.topics import ALL, topic_names

DONE, FAILING, NOT_STARTED = "done", "failing", "not started"
MARK = {DONE: "✓", FAILING: "✗", NOT_STARTED: "·"}


@dataclass
class CheckResult:
    id: str
    topic: str
    name: str
    status: str  # passed, failed or skipped
    message: str = ""
    frames: list[str] = field(default_factory=list)
    not_started: bool = False
    duration: float = 0.0
    output: str = ""
    mistake: str | None = None  # the named mistake's stable id ("loss.no_T_squared"; two joined by "+")

    @property
    def passed(self) -> bool:
        return self.status == "passed"

    def detail(self) -> str:
        """The message, the learner's own frames, and any report the check printed."""
        parts = [self.message] if self.message else []
        parts += [f"  at {frame}" for frame in self.frames]
        if self.output:
            parts.append(self.output)
        return "\n".join(parts)


@dataclass
class TopicResult:
    name: str
    checks: list[CheckResult]

    @property
    def passed(self) -> int:
        return sum(c.passed for c in self.checks)

    @property
    def failed(self) -> list[CheckResult]:
        return [c for c in self.checks if c.status == "failed"]

    @property
    def status(self) -> str:
        failed = self.failed
        if not failed and self.passed:
            return DONE
        if failed and all(c.not_started for c in failed) and not self.passed:
            return NOT_STARTED
        return FAILING if failed else NOT_STARTED


def by_topic(results: list[CheckResult], topics: list[str]) -> list[TopicResult]:
    order = [t for t in [*topic_names(), ALL] if t in topics]
    return [TopicResult(t, [r for r in results if r.topic == t]) for t in order]


def mistake_ids(mistake: str | None) -> list[str]:
    """The ids of the named mistakes of a failed check: "loss.no_T_squared+loss.alpha_swapped" holds two."""
    return [part for part in (mistake or "").split("+") if part]


def gradescope(results: list[CheckResult], execution_time: float, summary: str) -> dict:
    """Gradescope's results.json: one test per check, worth its points (grader/course/points.toml), tagged with its
    topic and with the id of each named mistake it found ("loss.no_T_squared"), which a script or an LMS can count."""
    from grader.course.points import points

    order = [*topic_names(), ALL]
    tests, counters = [], {}
    for r in results:
        worth = points(r.id, r.topic)
        if r.status == "skipped" and r.topic == ALL:
            status, score = "failed", 0.0  # skipped end to end: not earned
        else:
            status, score = ("passed", worth) if r.passed else ("failed", 0.0)
        counters[r.topic] = counters.get(r.topic, 0) + 1
        number = f"{order.index(r.topic) + 1 if r.topic in order else len(order) + 1}.{counters[r.topic]}"
        tests.append({"name": f"{r.topic}: {r.name}", "number": number, "score": score, "max_score": worth,
                      "status": status, "output": r.detail() if not r.passed else (r.output or ""),
                      "tags": [r.topic, *mistake_ids(r.mistake)], "visibility": "visible"})
    return {"score": sum(t["score"] for t in tests), "max_score": sum(t["max_score"] for t in tests),
            "execution_time": round(execution_time, 2), "output": summary, "visibility": "visible",
            "stdout_visibility": "visible", "tests": tests}
