"""A learner's progress, kept in ``<project>/.learnkd/progress.json`` next to their exercises (a lab
notebook's in ``.learnkd/progress-<notebook>.json`` beside it).

It holds, per topic, the last grading's status and counts, and how many hints were shown. A file that
cannot be read is set aside (``progress.json.corrupt``) with a warning and rebuilt, never fatal.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from grader.course.topics import topic_names

STATE_DIR = ".learnkd"
VERSION = 1


class Progress:
    def __init__(self, project: Path, name: str = "progress.json"):
        self.path = Path(project) / STATE_DIR / name
        self.data = self._read()

    @classmethod
    def of_notebook(cls, notebook: Path) -> "Progress":
        """The progress of a lab notebook's cells: its own file beside the exercises' one (``.learnkd/
        progress-learnkd-lab.ipynb.json``), so that grading a notebook never shows or changes the files' state."""
        notebook = Path(notebook).resolve()
        progress = cls(notebook.parent, f"progress-{notebook.name}.json")
        progress.notebook = notebook.name
        return progress

    notebook: str | None = None  # the notebook whose progress this is, if any

    def _empty(self) -> dict:
        return {"version": VERSION, "topics": {}, "hints": {}}

    def _read(self) -> dict:
        if not self.path.exists():
            return self._empty()
        try:
            data = json.loads(self.path.read_text())
            if not (isinstance(data, dict) and isinstance(data.get("topics"), dict)
                    and isinstance(data.get("hints"), dict)):
                raise ValueError("not a learnkd progress file")
            return data
        except (OSError, ValueError) as err:
            backup = self.path.with_name(self.path.name + ".corrupt")
            try:
                os.replace(self.path, backup)
                kept = f" (the old file is kept as {backup})"
            except OSError:
                kept = ""
            print(f"warning: the progress file {self.path} could not be read ({err}); starting it again "
                  f"from your next check{kept}.", file=sys.stderr)
            return self._empty()

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=2, sort_keys=True))
        os.replace(tmp, self.path)  # atomic: a crash never leaves half a file

    def record(self, topic: str, status: str, passed: int, total: int) -> None:
        self.data["topics"][topic] = {"status": status, "passed": passed, "total": total,
                                      "checked": time.strftime("%Y-%m-%d %H:%M:%S")}

    def status(self, topic: str) -> str | None:
        entry = self.data["topics"].get(topic)
        return entry.get("status") if isinstance(entry, dict) else None

    def entry(self, topic: str) -> dict:
        entry = self.data["topics"].get(topic)
        return entry if isinstance(entry, dict) else {}

    def topics_left(self) -> list[str]:
        """The topics not done, in course order."""
        return [name for name in topic_names() if self.status(name) != "done"]

    def next_topic(self) -> str | None:
        """The first topic in course order that is not done; None when all are."""
        return next(iter(self.topics_left()), None)

    def hints_shown(self, topic: str) -> int:
        value = self.data["hints"].get(topic, 0)
        return value if isinstance(value, int) and value >= 0 else 0

    def show_hint(self, topic: str, available: int) -> int:
        """One more hint of ``topic``: its count after this call (at most ``available``)."""
        shown = min(self.hints_shown(topic) + 1, available)
        self.data["hints"][topic] = shown
        return shown
