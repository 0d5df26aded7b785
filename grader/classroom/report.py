"""The class report: one self-contained HTML page about a graded class (``learnkd grade --out DIR`` writes
``DIR/class-report.html``; ``learnkd class-report DIR`` writes it again from what is in DIR).

It reads only what `grade` wrote: ``gradebook.csv`` (a row per submission, its points per topic, its crash)
and each submission's ``results.json`` (Gradescope's format: each check's status, its message, and tags with
the ids of the named mistakes it found). It shows the score distribution, the pass rate of every topic and of
every check, the named mistakes counted across the class with a message a student saw, the crashes and
timeouts, and a row per submission linking to its results. The figure is inline (a PNG in a data: URL) and
there is no script, so the file opens from disk anywhere. Every string that comes from a submission (its
name, its source, its messages) is escaped: a name or a message cannot add HTML to the page.
"""

from __future__ import annotations

import base64
import csv
import html
import io
import json
import os
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from grader.classroom.batch import CLASS_REPORT, GRADEBOOK, RESULTS, write_atomic

REPORT = CLASS_REPORT
EXAMPLE_LIMIT = 600  # characters of the example message shown for a mistake
TIMEOUT_WORDS = ("did not finish within", "grading took longer than")


class ReportError(Exception):
    """DIR holds no graded class: one paragraph."""


def mistakes_of(test: dict) -> list[str]:
    """The ids of the named mistakes a check of results.json found: its tags after the first (its topic)."""
    tags = test.get("tags")
    return [t for t in tags[1:] if isinstance(t, str)] if isinstance(tags, list) else []


@dataclass
class Submission:
    name: str
    source: str
    scores: dict[str, float]
    total: float
    crash: str
    tests: list[dict] = field(default_factory=list)
    has_results: bool = False

    @property
    def mistakes(self) -> list[str]:
        found = []
        for test in self.failed:
            found += [m for m in mistakes_of(test) if m not in found]
        return found

    @property
    def failed(self) -> list[dict]:
        return [t for t in self.tests if t.get("status") == "failed"]

    @property
    def timed_out(self) -> bool:
        return any(w in (self.crash or "") for w in TIMEOUT_WORDS) or any(
            any(w in str(t.get("output", "")) for w in TIMEOUT_WORDS) for t in self.failed)


@dataclass
class Class:
    topics: list[str]
    possible: dict[str, float]
    submissions: list[Submission]

    @property
    def total_possible(self) -> float:
        return sum(self.possible.values())


def number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return 0.0


def read_class(folder: Path) -> Class:
    """The class as `grade` left it in ``folder``; ReportError when there is no gradebook to read."""
    book = Path(folder) / GRADEBOOK
    try:
        with open(book, newline="", encoding="utf-8") as f:  # a field may hold any line break: csv reads it
            rows = list(csv.reader(f))
    except FileNotFoundError:
        raise ReportError(f"{folder} holds no {GRADEBOOK}: give the --out folder of a `learnkd grade` run.") from None
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise ReportError(f"{book} could not be read ({err}): run `learnkd grade` again to write it.") from None
    if len(rows) < 2 or rows[0][:2] != ["submission", "source"] or rows[0][-2:] != ["total", "crash"]:
        raise ReportError(f"{book} is not a gradebook written by `learnkd grade`: run it again to write one.")
    topics = rows[0][2:-2]
    possible = {t: number(v) for t, v in zip(topics, rows[1][2:])}
    submissions = []
    for row in rows[2:]:
        if len(row) != len(rows[0]):
            continue
        sub = Submission(row[0], row[1], {t: number(v) for t, v in zip(topics, row[2:])}, number(row[-2]), row[-1])
        results = Path(folder) / sub.name / RESULTS
        if sub.name not in (".", "..") and "/" not in sub.name and results.is_file():
            try:
                data = json.loads(results.read_text(encoding="utf-8"))
                sub.tests = [t for t in data.get("tests", []) if isinstance(t, dict)]
                sub.has_results = True
            except (OSError, ValueError, AttributeError):
                pass
        submissions.append(sub)
    return Class(topics, possible, submissions)


# ---------------------------------------------------------------------------------------------------
# What the page says


def check_rates(klass: Class) -> list[tuple[str, int, int]]:
    """(check, submissions that passed it, submissions that ran it), the least passed first."""
    counts: dict[str, list[int]] = {}
    for sub in klass.submissions:
        for test in sub.tests:
            seen = counts.setdefault(str(test.get("name", "?")), [0, 0])
            seen[1] += 1
            seen[0] += test.get("status") == "passed"
    return sorted(((name, p, n) for name, (p, n) in counts.items()), key=lambda r: (r[1] / max(r[2], 1), r[0]))


def mistake_counts(klass: Class) -> list[tuple[str, list[Submission], str]]:
    """(mistake id, the submissions that made it, a message one of them saw), the most common first."""
    made: dict[str, list[Submission]] = {}
    example: dict[str, str] = {}
    for sub in klass.submissions:
        for test in sub.failed:
            for mistake in mistakes_of(test):
                if sub not in made.setdefault(mistake, []):
                    made[mistake].append(sub)
                example.setdefault(mistake, str(test.get("output", "")))
    return sorted(((m, subs, example[m]) for m, subs in made.items()), key=lambda r: (-len(r[1]), r[0]))


def histogram(klass: Class) -> str:
    """The distribution of total scores, as a PNG in a data: URL."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 2.8), dpi=100)
    totals = [s.total for s in klass.submissions]
    top = max(klass.total_possible, max(totals, default=0), 1)
    ax.hist(totals, bins=min(20, max(5, len(totals))), range=(0, top), color="#3b7dd8", edgecolor="white")
    ax.set_xlabel(f"total score (of {klass.total_possible:g})")
    ax.set_ylabel("submissions")
    ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# ---------------------------------------------------------------------------------------------------
# The page


STYLE = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .5em 0; } td, th { padding: .25em .7em; border-bottom: 1px solid #eee;
text-align: left; vertical-align: top; } th { background: #f6f6f6; } td.num { text-align: right; }
.bar { display: inline-block; height: .8em; background: #3b7dd8; } .bar.low { background: #d8583b; }
pre { white-space: pre-wrap; margin: 0; font-size: .85em; max-width: 60em; } .muted { color: #777; }
code { background: #f3f3f3; padding: 0 .2em; }
"""


def esc(value) -> str:
    return html.escape(str(value), quote=True)


def rate_cell(passed: int, total: int) -> str:
    share = passed / total if total else 0.0
    low = " low" if share < 0.5 else ""
    return (f'<td class="num">{passed} of {total}</td><td><span class="bar{low}" style="width:{share * 10:.2f}em">'
            f'</span> {share:.0%}</td>')


def render(klass: Class, folder_label: str) -> str:
    n = len(klass.submissions)
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>learnkd class report</title>"
             f"<style>{STYLE}</style></head><body>",
             f"<h1>learnkd class report</h1><p class=muted>{n} submission{'s' if n != 1 else ''} graded on "
             f"{esc(', '.join(klass.topics))}, from <code>{esc(folder_label)}</code>; written "
             f"{esc(time.strftime('%Y-%m-%d %H:%M'))}.</p>"]
    parts.append("<h2>Scores</h2>")
    if n:
        totals = sorted(s.total for s in klass.submissions)
        median = totals[n // 2] if n % 2 else (totals[n // 2 - 1] + totals[n // 2]) / 2
        full = sum(s.total >= klass.total_possible > 0 for s in klass.submissions)
        parts.append(f"<p>median {median:g} of {klass.total_possible:g}; full marks: {full} of {n}.</p>"
                     f'<img alt="histogram of the total scores" src="{histogram(klass)}">')
    parts.append("<h2>Topics</h2><table><tr><th>topic</th><th>passed every check</th><th></th>"
                 "<th>mean points</th></tr>")
    for topic in klass.topics:
        possible = klass.possible.get(topic, 0.0)
        passed = sum(possible > 0 and s.scores.get(topic, 0.0) >= possible for s in klass.submissions)
        mean = sum(s.scores.get(topic, 0.0) for s in klass.submissions) / n if n else 0.0
        parts.append(f"<tr><td>{esc(topic)}</td>{rate_cell(passed, n)}<td class=num>{mean:.1f} of "
                     f"{possible:g}</td></tr>")
    parts.append("</table>")
    mistakes = mistake_counts(klass)
    parts.append("<h2>Named mistakes</h2>")
    if mistakes:
        parts.append("<table><tr><th>mistake</th><th>submissions</th><th>what a student read</th></tr>")
        for mistake, subs, example in mistakes:
            names = ", ".join(esc(s.name) for s in subs)
            text = example if len(example) <= EXAMPLE_LIMIT else example[:EXAMPLE_LIMIT] + " ..."
            parts.append(f"<tr><td><code>{esc(mistake)}</code></td><td class=num title=\"{names}\">{len(subs)} of "
                         f"{n}</td><td><pre>{esc(text)}</pre><span class=muted>{names}</span></td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>No named mistake: every failed check was one the grader could not name.</p>")
    broken = [s for s in klass.submissions if s.crash or s.timed_out]
    parts.append("<h2>Crashes and timeouts</h2>")
    if broken:
        parts.append("<table><tr><th>submission</th><th>what happened</th></tr>")
        for sub in broken:
            what = sub.crash or next(str(t.get("output", "")) for t in sub.failed
                                     if any(w in str(t.get("output", "")) for w in TIMEOUT_WORDS))
            kind = "timeout" if sub.timed_out else "crash"
            parts.append(f"<tr><td>{esc(sub.name)}</td><td><b>{kind}</b> <pre>{esc(what[:EXAMPLE_LIMIT])}</pre>"
                         f"</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p>None.</p>")
    parts.append("<h2>Checks</h2><table><tr><th>check</th><th>passed</th><th></th></tr>")
    for name, passed, total in check_rates(klass):
        parts.append(f"<tr><td>{esc(name)}</td>{rate_cell(passed, total)}</tr>")
    parts.append("</table>")
    parts.append("<h2>Submissions</h2><table><tr><th>submission</th><th>source</th>"
                 + "".join(f"<th>{esc(t)}</th>" for t in klass.topics) + "<th>total</th><th>mistakes</th></tr>")
    for sub in klass.submissions:
        link = (f'<a href="{esc(urllib.parse.quote(sub.name))}/{RESULTS}">{esc(sub.name)}</a>' if sub.has_results
                else esc(sub.name))
        cells = "".join(f"<td class=num>{sub.scores.get(t, 0.0):g}</td>" for t in klass.topics)
        parts.append(f"<tr><td>{link}</td><td class=muted>{esc(sub.source)}</td>{cells}<td class=num>"
                     f"{sub.total:g}</td><td>{', '.join(f'<code>{esc(m)}</code>' for m in sub.mistakes)}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)


def write_report(folder: Path) -> Path:
    """``folder/class-report.html`` from the gradebook and results there, written whole (a temporary file renamed)."""
    folder = Path(folder)
    klass = read_class(folder)
    path = folder / REPORT
    write_atomic(path, render(klass, os.path.abspath(folder)).encode("utf-8"))
    return path
