"""The results channel between the grading process and the grader that started it.

The grading process runs the learner's code, so anything it could write to a file the learner's code
could write too. Results therefore travel through a pipe whose file descriptor, like the per-run key
that signs each record, reaches the grading process on its stdin (read, then closed, before any
learner code runs) and appears in no path, argument or environment variable. Each line is
``MAC SEQ PAYLOAD``: an HMAC-SHA256 under the key of the sequence number and the JSON payload.
The last record says the run ended; without it the run did not finish, whatever its exit code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field

PLAN, CHECK, END = "plan", "check", "end"  # the checks that will run; one check's result; the run ended


def sign(key: bytes, seq: int, payload: str) -> str:
    return hmac.new(key, f"{seq} {payload}".encode(), hashlib.sha256).hexdigest()


class Writer:
    """The grading process's end: signed records, in order, to an inherited pipe."""

    def __init__(self, fd: int, key: bytes):
        self._fd, self._key, self._seq = fd, key, 0

    def send(self, kind: str, data: dict) -> None:
        payload = json.dumps({"kind": kind, "data": data})
        line = f"{sign(self._key, self._seq, payload)} {self._seq} {payload}\n".encode()
        self._seq += 1
        view = memoryview(line)
        while view:  # a record longer than the pipe's buffer goes in several writes
            view = view[os.write(self._fd, view):]

    def close(self) -> None:
        os.close(self._fd)


@dataclass
class Received:
    """What the grader read from the channel: the checks, and whether the run ended and was not tampered with."""
    plan: list[dict] | None = None  # {"id", "topic", "name"} of every check the run collected
    checks: list[dict] = field(default_factory=list)
    end: dict | None = None  # the final record: {"missing": [...]} when some checks never ran
    forged: str | None = None  # why a line was rejected, when one was


def read(data: bytes, key: bytes) -> Received:
    """Verify and decode everything the grading process sent; the first bad line rejects the rest."""
    received = Received()
    lines = data.split(b"\n")
    lines.pop()  # empty after the last newline, or a line cut short when the process was killed
    for seq, raw in enumerate(lines):
        try:
            mac, number, payload = raw.decode().split(" ", 2)
            valid = int(number) == seq and hmac.compare_digest(mac, sign(key, seq, payload))
            record = json.loads(payload) if valid else None
        except (UnicodeDecodeError, ValueError):
            valid, record = False, None
        if not valid or received.end is not None or record.get("kind") not in (PLAN, CHECK, END):
            received.forged = f"line {seq + 1} of the results channel was not written by the grader"
            break
        if record["kind"] == END:
            received.end = record["data"]
        elif record["kind"] == PLAN:
            received.plan = record["data"]["checks"]
        else:
            received.checks.append(record["data"])
    return received
