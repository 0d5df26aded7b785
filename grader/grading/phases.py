"""What `learnkd check` shows while the checks run, so that a slow run never looks like a hung one.

A pytest plugin of the judge. When the run grades several topics (`learnkd check all`), a line as each
one starts ("checking train (3/5): 17 checks"); on a terminal, also a progress bar over the topics' checks
with an estimate of the time left, redrawn every second so that a long check still shows time passing.
The end-to-end run shows its own lines and the worker's training bars (``end_to_end``,
``grader.worker.pipeline``): this bar is gone before they start. Off a terminal (a pipe, a log, --json
output) there is no bar, and no carriage return: only the lines.
"""

from __future__ import annotations

import os
import threading

from grader.course.topics import ALL
from grader.grading.session import topic_of

REDRAW_S = 1.0


def bar_width(stream) -> dict:
    """tqdm's size arguments: the terminal's, following it; 100 columns and 40 rows where it says it has none
    (a fresh pseudo-terminal, some editors' shells), where tqdm would draw nothing."""
    try:
        size = os.get_terminal_size(stream.fileno())
    except (OSError, ValueError, AttributeError):
        size = os.terminal_size((0, 0))
    if size.columns > 0 and size.lines > 0:
        return {"dynamic_ncols": True}
    return {"ncols": size.columns or 100, "nrows": size.lines or 40}


class Phases:
    def __init__(self, stream, bars: bool):
        self.stream, self.bars = stream, bars
        self.topic_of: dict[str, str] = {}
        self.order: list[str] = []
        self.counts: dict[str, int] = {}
        self.current: str | None = None
        self.config = None
        self.bar = None
        self.stop = threading.Event()
        self.redraw: threading.Thread | None = None

    def say(self, text: str) -> None:
        if self.stream is None:
            return
        if self.bar is not None:
            self.bar.clear()
        self.stream.write(text + "\n")
        self.stream.flush()
        if self.bar is not None:
            self.bar.refresh()

    def pytest_collection_finish(self, session):
        self.config = session.config
        for item in session.items:
            topic = self.topic_of[item.nodeid] = topic_of(item)
            if topic not in self.counts:
                self.order.append(topic)
                self.counts[topic] = 0
            self.counts[topic] += 1
        checks = sum(n for topic, n in self.counts.items() if topic != ALL)
        if self.bars and self.stream is not None and checks:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self.bar = tqdm(total=checks, file=self.stream, leave=False, unit="check", mininterval=0.2,
                            bar_format="{desc} {n_fmt}/{total_fmt} checks |{bar}| [{elapsed}<{remaining}]",
                            **bar_width(self.stream))
            self.bar.set_description_str("checking", refresh=True)
            self.redraw = threading.Thread(target=self.redraw_bar, daemon=True)
            self.redraw.start()

    def redraw_bar(self) -> None:
        while not self.stop.wait(REDRAW_S):
            bar = self.bar
            if bar is not None:
                try:
                    bar.refresh()
                except Exception:  # a bar closed meanwhile: nothing to draw
                    pass

    def close_bar(self) -> None:
        self.stop.set()
        bar, self.bar = self.bar, None
        if bar is not None:
            bar.close()

    def pytest_runtest_logstart(self, nodeid, location):
        topic = self.topic_of.get(nodeid)
        if topic is None or topic == self.current:
            return
        self.current = topic
        several = len(self.order) > 1
        step = f" ({self.order.index(topic) + 1}/{len(self.order)})" if several else ""
        if topic == ALL:
            self.close_bar()
            failed = sorted(getattr(self.config, "learnkd_failed_topics", ()) or ())
            if several and failed:
                self.say(f"end to end{step}: skipped, {', '.join(failed)} fail{'s' if len(failed) == 1 else ''}")
            elif several:
                self.say(f"end to end{step}: training your models on MNIST (minutes; each shows its progress)")
            return
        if several:
            count = self.counts[topic]
            self.say(f"checking {topic}{step}: {count} check{'s' if count != 1 else ''}")
        if self.bar is not None:
            self.bar.set_description_str(f"checking {topic}", refresh=True)

    def pytest_runtest_logfinish(self, nodeid, location):
        if self.bar is not None and self.topic_of.get(nodeid) != ALL:
            self.bar.update(1)

    def pytest_sessionfinish(self, session, exitstatus):
        self.close_bar()
