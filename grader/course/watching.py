"""Waiting for the learner to save a file (``learnkd watch``): watchfiles where it is installed, polling
otherwise; a burst of saves (editors write a file, its backup and a swap file at once) counts once."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

DEBOUNCE_S = 0.4  # a save burst: changes this close together are one change
POLL_S = 0.25  # how often the polling fallback looks
IGNORED_PARTS = {"__pycache__", ".ipynb_checkpoints", ".learnkd", ".git"}


def relevant(path: Path) -> bool:
    """A file whose change means new work: a .py or .ipynb file, not a cache, a backup or a swap file."""
    return (path.suffix in (".py", ".ipynb") and not path.name.startswith((".", "#"))
            and not IGNORED_PARTS.intersection(path.parts))


def snapshot(targets: Iterable[Path]) -> dict[Path, tuple[int, int]]:
    """(mtime, size) of every relevant file under the targets (files or folders)."""
    seen = {}
    for target in targets:
        files = [target] if target.is_file() else target.rglob("*") if target.is_dir() else []
        for path in files:
            if path.is_file() and relevant(path):
                try:
                    stat = path.stat()
                except OSError:
                    continue
                seen[path] = (stat.st_mtime_ns, stat.st_size)
    return seen


def changes(before: dict, now: dict) -> list[Path]:
    return sorted(p for p in set(before) | set(now) if before.get(p) != now.get(p))


def wait_polling(targets: list[Path], since: dict | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> list[Path]:
    """Block until a relevant file changes, appears or goes (compared with ``since``, the files as they were
    graded; default: now) and the burst is over; the files that changed."""
    before = snapshot(targets) if since is None else since
    now = snapshot(targets)
    while now == before:
        sleep(POLL_S)
        now = snapshot(targets)
    while True:  # debounce: wait until a look finds nothing new
        sleep(DEBOUNCE_S)
        settled = snapshot(targets)
        if settled == now:
            break
        now = settled
    return changes(before, now)


def wait_watchfiles(targets: list[Path], since: dict | None = None) -> list[Path]:
    """As ``wait_polling``, told by the system (inotify, FSEvents, ...) instead of looking. A save made before
    the watcher started (while the check ran) is caught by comparing with ``since`` each second."""
    import watchfiles

    before = snapshot(targets) if since is None else since
    for batch in watchfiles.watch(*targets, debounce=int(DEBOUNCE_S * 1000), step=50, rust_timeout=1000,
                                  yield_on_timeout=True, raise_interrupt=True,
                                  watch_filter=lambda change, name: relevant(Path(name))):
        if batch:
            return sorted({Path(name) for _, name in batch})
        missed = changes(before, snapshot(targets))
        if missed:
            return missed
    return []


def wait_for_change(targets: list[Path], polling: bool = False, since: dict | None = None) -> tuple[list[Path], str]:
    """The files that changed since ``since`` (their ``snapshot`` when the check began), and how they were
    seen ("watchfiles" or "polling")."""
    if not polling:
        try:
            return wait_watchfiles(targets, since), "watchfiles"
        except ImportError:
            pass
    return wait_polling(targets, since), "polling"
