"""Grading a class: many submissions, each in a grading process of its own with a time and a memory limit.

A submission is a folder laid out like exercises/ (or holding one), a notebook (.ipynb), or a .zip of
either. Each is copied (or unpacked, or written out from its notebook) into a folder of its own, graded
by ``run_grading`` (the one grading flow: the learner's code in the sandbox, the checks in the judge), and
written as a Gradescope results.json. The batch gets a CSV gradebook (a row per submission, a column per
topic, the total) and a JUnit XML report. One that crashes, hangs, eats memory or prints garbage fails
its own checks and nothing else.

Grading refuses to start where no sandbox can be made (``SandboxMissing``) unless the caller asks for
none (``Options.sandbox = "none"``, `learnkd grade --no-sandbox`). Whatever a submission is called, its
results folder never takes the name of an output file, and every output is written to a temporary name
and renamed into place, so an interrupted run leaves the previous gradebook whole.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import stat
import tempfile
import unicodedata
import zipfile
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from xml.etree import ElementTree

from grader.grading import ALL_TIMEOUT_S, MEMORY_LIMIT_MB, GradingError, run_grading, sandbox, warm_judges
from grader.grading.forkserver import Judges
from grader.grading.request import GradingRequest
from grader.course.points import points
from grader.grading.results import CheckResult, by_topic, gradescope
from grader.course.topics import ALL, topic_names, topics

# Wall-clock limit of one submission's topic checks: they take ~5-10 s on 2 busy cores, and a request to
# the learner's code that loops is stopped after 30 s (GradingRequest.check_timeout), so two minutes leaves
# room for a few such requests. With `all`, grading.ALL_TIMEOUT_S.
TOPIC_TIMEOUT_S = 120
ZIP_LIMIT_BYTES = 100 * 2**20  # unpacked size of one zip: a class's code and notebooks are far smaller
ZIP_LIMIT_FILES = 2000
SUBMISSION_FOLDER = "exercises"  # what the graded copy is called: messages say exercises/loss.py:31
GRADEBOOK, JUNIT, RESULTS = "gradebook.csv", "junit.xml", "results.json"  # in --out; results.json per submission
CLASS_REPORT = "class-report.html"  # in --out, written by grader.classroom.report
OUTPUT_NAMES = (GRADEBOOK, JUNIT, CLASS_REPORT)  # the batch's own files: no submission's results folder takes these
NAME_LIMIT = 80  # characters of a results folder's name (file systems allow 255 bytes; UTF-8 takes up to 4 a character)
NO_SANDBOX = ("--no-sandbox: the submissions' code runs as you, without isolation. It can read and change your files "
              "(SSH keys, shell start-up files, this gradebook, the other submissions), reach the network, and "
              "signal or outlive the grading processes. The checks still run apart from it and decide every score, "
              "so scores stay honest as long as it harms nothing; grade only submissions you trust this way.")


class SandboxMissing(GradingError):
    """`learnkd grade` needs a sandbox, and none can be made on this machine."""


class OutputError(GradingError):
    """The output folder cannot be written."""


def output_error(out: Path, err: OSError) -> OutputError:
    return OutputError(f"The results could not be written to {out}: {err}. Give an --out folder you can write to "
                       "(gradebook.csv and junit.xml in it, if they are there, must be files).")


def sandbox_missing() -> SandboxMissing:
    import sys

    where = ("this is not Linux" if not sys.platform.startswith("linux") else
             "neither bubblewrap (bwrap) nor util-linux unshare can make one here (missing, or user namespaces "
             "are not allowed, as in many containers)")
    return SandboxMissing(
        "learnkd grade runs each submission's code in a sandbox, so that it cannot read or change your files, "
        "reach the network, see or harm the other submissions, or leave a process behind; no sandbox can be "
        f"made on this machine: {where}. Install bubblewrap (Debian/Ubuntu: sudo apt-get install bubblewrap) "
        "and allow unprivileged user namespaces, or grade on a Linux machine that has them. If you trust every "
        "submission, add --no-sandbox to grade without isolation.")


@dataclass
class Handin:
    """One submission as given, and the folder that is graded (or why there is none)."""
    name: str
    source: Path
    folder: Path | None = None
    notebook: object | None = None  # a grader.notebook.build.NotebookSubmission, to point results at cells
    problem: str | None = None


@dataclass
class Graded:
    handin: Handin
    results: list[CheckResult] = field(default_factory=list)
    seconds: float = 0.0
    crash: str | None = None
    plan: list[dict] | None = None

    def scores(self, names: list[str]) -> dict[str, tuple[float, float]]:
        """Topic -> (points earned, points possible)."""
        found = {}
        for name in names:
            checks = [r for r in self.results if r.topic == name]
            found[name] = (sum(points(r.id, r.topic) for r in checks if r.passed),
                           sum(points(r.id, r.topic) for r in checks))
        return found


def selected_topics(topic_list: list[str]) -> list[str]:
    """The topics whose results a run reports: every topic and the end-to-end run for `all`."""
    return [*topic_names(), ALL] if ALL in topic_list else [t for t in topic_names() if t in topic_list]


# ---------------------------------------------------------------------------------------------------
# Preparing a submission


def unpack(archive: Path, into: Path) -> None:
    """Unpack a zip without letting it write outside ``into`` (no absolute paths, '..', links or bombs)."""
    with zipfile.ZipFile(archive) as zf:
        members = [m for m in zf.infolist() if not m.is_dir()]
        if len(members) > ZIP_LIMIT_FILES or sum(m.file_size for m in members) > ZIP_LIMIT_BYTES:
            raise ValueError(f"it unpacks to more than {ZIP_LIMIT_FILES} files or {ZIP_LIMIT_BYTES // 2**20} MB")
        for member in members:
            parts = Path(member.filename.replace("\\", "/")).parts
            if member.filename.startswith("/") or ".." in parts or stat.S_ISLNK(member.external_attr >> 16):
                continue
            target = into.joinpath(*parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(member) as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)


def find_layout(root: Path) -> Path | None:
    """The folder under ``root`` holding the most topic files (the shallowest on a tie), else a notebook."""
    if root.is_file():
        return root
    files = {t.file for t in topics()}
    skip = {"__MACOSX", ".ipynb_checkpoints", "__pycache__"}
    folders = {p.parent for p in root.rglob("*.py") if p.name in files and not skip & set(p.parts)}
    if folders:
        return min(folders, key=lambda d: (-sum((d / f).is_file() for f in files), len(d.parts), str(d)))
    notebooks = sorted((p for p in root.rglob("*.ipynb") if not skip & set(p.parts)), key=lambda p: (len(p.parts), str(p)))
    return notebooks[0] if notebooks else None


def copy_code(source: Path, target: Path) -> None:
    """Copy a folder's regular files; a link is copied as the link, never followed (it could point at the
    reference), so that grading leaves it out and says why."""
    for path in sorted(source.rglob("*")):
        relative = path.relative_to(source)
        if "__pycache__" in relative.parts:
            continue
        if path.is_symlink():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(os.readlink(path), target / relative)
        elif path.is_dir():
            (target / relative).mkdir(parents=True, exist_ok=True)
        elif path.is_file():
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target / relative)
    target.mkdir(parents=True, exist_ok=True)


def prepare(source: Path, work: Path, name: str, graded: list[str]) -> Handin:
    """Lay ``source`` out as ``work/<name>/exercises``; Handin.problem says why it could not be."""
    handin = Handin(name, source)
    home = work / name
    home.mkdir(parents=True)
    try:
        if source.is_file() and source.suffix.lower() == ".zip":
            unpack(source, home / "unpacked")
            source = home / "unpacked"
        elif not (source.is_dir() or source.suffix.lower() == ".ipynb"):
            raise ValueError("it is not a folder, a notebook (.ipynb) or a .zip of either")
        found = find_layout(source)
        if found is None:
            raise ValueError("it holds no exercise file (models.py, loss.py, train.py, evaluate.py) and no notebook")
        folder = home / SUBMISSION_FOLDER
        if found.suffix.lower() == ".ipynb":
            from grader.notebook.build import NotebookError, write_submission

            try:
                handin.notebook = write_submission(found, folder, graded)
            except NotebookError as err:
                raise ValueError(str(err)) from None
        else:
            copy_code(found, folder)
        handin.folder = folder
    except (ValueError, zipfile.BadZipFile, OSError, UnicodeError) as err:
        handin.problem = f"{source_label(handin)} could not be graded: {err}"
    return handin


def safe_name(source: Path) -> str:
    """A folder name for ``source``'s results: letters (any script), digits, '_', '-' and inner dots; never
    empty, never '.', '..' or hidden, never longer than NAME_LIMIT."""
    absolute = Path(os.path.abspath(source))  # '.' and '..' by the folder they name
    for raw in ((absolute.stem, absolute.name) if source.is_file() else (absolute.name,)):
        text = re.sub(r"[^\w.-]+", "_", unicodedata.normalize("NFC", raw))
        text = text.strip("._-")[:NAME_LIMIT].rstrip("._-")
        if text:
            return text
    return "submission"


def unique_names(sources: list[Path], out: Path | None = None) -> list[str]:
    """One results folder name per submission: distinct even on a file system that ignores case, and
    never an output file's name (gradebook.csv, junit.xml) or a file already in ``out``."""
    taken = {name.casefold() for name in OUTPUT_NAMES}
    if out is not None and out.is_dir():
        taken |= {p.name.casefold() for p in out.iterdir() if not p.is_dir() or p.is_symlink()}
    names = []
    for source in sources:
        base = safe_name(source)
        name, n = base, 2
        while name.casefold() in taken:
            name, n = f"{base}-{n}", n + 1
        taken.add(name.casefold())
        names.append(name)
    return names


# ---------------------------------------------------------------------------------------------------
# Grading


@dataclass
class Options:
    topics: list[str]
    jobs: int = 1
    timeout: float | None = None
    memory_mb: int = MEMORY_LIMIT_MB
    seed: int = 0
    data_dir: str | None = None
    device: str = "cpu"
    sandbox: str | None = None  # None: the best this machine has, and refuse if it has none; "none": no isolation
    check_timeout: float = GradingRequest.check_timeout  # seconds one request to a learner's code may take


def sandbox_for(options: Options) -> str:
    """The sandbox the batch runs in; SandboxMissing when there is none and none was not asked for."""
    if options.sandbox is not None:
        return options.sandbox
    kind = sandbox.kind()
    if kind == sandbox.NONE:
        raise sandbox_missing()
    return kind


def grade_one(handin: Handin, options: Options, kind: str | None = None, judges: Judges | None = None) -> Graded:
    """One submission through the one grading flow (``run_grading``), with no teacher cache; ``judges``: the
    batch's fork server, which starts each judge with PyTorch and the checks already loaded."""
    if handin.problem:
        return Graded(handin, crash=handin.problem)
    timeout = options.timeout or (ALL_TIMEOUT_S if ALL in options.topics else TOPIC_TIMEOUT_S)
    request = GradingRequest(path=str(handin.folder), topics=list(options.topics), device=options.device,
                             data_dir=options.data_dir, seed=options.seed, cache_dir=None,
                             check_timeout=options.check_timeout)
    try:
        # `all` trains: the cores are shared among the gradings that run side by side; the topic checks keep
        # run_grading's one thread (tiny tensors)
        threads = max(1, (os.cpu_count() or 1) // max(1, options.jobs)) if ALL in options.topics else None
        grading = run_grading(request, timeout=timeout, memory_mb=options.memory_mb, quiet=True,
                              sandbox_kind=kind or sandbox_for(options), threads=threads, judges=judges)
    except (GradingError, OSError) as err:  # e.g. too many files to copy: this submission fails, not the batch
        return Graded(handin, crash=f"{source_label(handin)} could not be graded: {err}")
    results = grading.results
    if handin.notebook is not None:
        results = handin.notebook.locate_results(results)
    return Graded(handin, results, grading.seconds, grading.crash, grading.plan)


def complete(graded: list[Graded], selected: list[str]) -> None:
    """Give every submission a result for every check: the same points possible for all of them.

    A run that died before listing its checks (or a submission that could not be prepared) gets the
    checks another run listed, failed with its reason.
    """
    plan = next((g.plan for g in graded if g.plan), None)
    for g in graded:
        if plan:
            have = {r.id for r in g.results}
            covered = {p["topic"] for p in plan}
            g.results = [r for r in g.results if not (r.id.endswith("::unfinished") and r.topic in covered)]
            g.results += [CheckResult(id=p["id"], topic=p["topic"], name=p["name"], status="failed",
                                      message=g.crash or "did not run") for p in plan if p["id"] not in have]
        elif not g.results:
            g.results = [CheckResult(id=f"{t}::unfinished", topic=t, name="the checks ran to the end", status="failed",
                                     message=g.crash or "did not run") for t in selected]


def grade_batch(sources: list[Path], out: Path, options: Options,
                on_done: Callable[[Graded], None] | None = None) -> list[Graded]:
    """Grade every submission (``options.jobs`` at a time) and write the results under ``out``.

    SandboxMissing (before anything is graded) when no sandbox can be made and ``options.sandbox`` is not
    "none"; OutputError when ``out`` cannot be written.
    """
    kind = sandbox_for(options)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(out, err) from None
    selected = selected_topics(options.topics)
    graded_topics = topic_names() if ALL in options.topics else options.topics
    sources = [Path(s) for s in sources]
    names = unique_names(sources, out)
    work = Path(tempfile.mkdtemp(prefix="learnkd-grade-"))
    try:
        handins = [prepare(s, work, n, graded_topics) for s, n in zip(sources, names)]
        done: dict[str, Graded] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, options.jobs))
        several = sum(not h.problem for h in handins) > 1
        warm = warm_judges(kind, options.device, options.topics) if several else nullcontext()
        with warm as judges:
            try:
                futures = [pool.submit(grade_one, h, options, kind, judges) for h in handins]
                for future in as_completed(futures):
                    graded = future.result()
                    done[graded.handin.name] = graded
                    if on_done:
                        on_done(graded)
            finally:
                pool.shutdown(wait=True, cancel_futures=True)  # interrupted: the queued ones never start
        batch = [done[h.name] for h in handins]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    complete(batch, selected)
    try:
        write_results(batch, out, selected)
    except OSError as err:
        raise output_error(out, err) from None
    return batch


# ---------------------------------------------------------------------------------------------------
# Writing the results


def summary(graded: Graded, selected: list[str]) -> str:
    parts = [f"{t.name} {t.status} ({t.passed}/{len(t.checks)})" for t in by_topic(graded.results, selected)]
    note = f"; note: {graded.crash}" if graded.crash else ""
    return f"learnkd grade {source_label(graded.handin)}: " + ", ".join(parts) + note


XML_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def xml_text(text: str) -> str:
    """Text that XML 1.0 can hold: learner output may contain any control character."""
    return XML_BAD.sub("?", text)


def junit(batch: list[Graded]) -> ElementTree.ElementTree:
    suites = ElementTree.Element("testsuites", name="learnkd")
    totals = {"tests": 0, "failures": 0, "skipped": 0}
    for graded in batch:
        failures = sum(r.status == "failed" for r in graded.results)
        skipped = sum(r.status == "skipped" for r in graded.results)
        suite = ElementTree.SubElement(suites, "testsuite", name=graded.handin.name, tests=str(len(graded.results)),
                                       failures=str(failures), errors="0", skipped=str(skipped),
                                       time=f"{graded.seconds:.2f}")
        for r in graded.results:
            case = ElementTree.SubElement(suite, "testcase", classname=f"{graded.handin.name}.{r.topic}",
                                          name=xml_text(r.name), time=f"{r.duration:.3f}")
            if r.status == "failed":
                failure = ElementTree.SubElement(case, "failure", message=xml_text(r.message[:500]))
                failure.text = xml_text(r.detail())
            elif r.status == "skipped":
                ElementTree.SubElement(case, "skipped", message=xml_text(r.message[:500]))
        if graded.crash:
            ElementTree.SubElement(suite, "system-err").text = xml_text(graded.crash)
        totals["tests"] += len(graded.results)
        totals["failures"] += failures
        totals["skipped"] += skipped
    for key, value in totals.items():
        suites.set(key, str(value))
    return ElementTree.ElementTree(suites)


def umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def source_label(handin: Handin) -> str:
    return handin.source.name or str(handin.source)


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: a hidden temporary file beside it, flushed, then renamed over it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~umask())  # mkstemp's 0600 would hide the gradebook from the course's staff
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def gradebook(batch: list[Graded], selected: list[str]) -> bytes:
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["submission", "source", *selected, "total", "crash"])
    possible = batch[0].scores(selected) if batch else {}
    writer.writerow(["(points possible)", "", *[f"{possible[t][1]:g}" for t in selected],
                     f"{sum(p for _, p in possible.values()):g}", ""])
    for graded in batch:
        scores = graded.scores(selected)
        writer.writerow([graded.handin.name, source_label(graded.handin), *[f"{scores[t][0]:g}" for t in selected],
                         f"{sum(e for e, _ in scores.values()):g}", (graded.crash or "")[:300]])
    return text.getvalue().encode("utf-8")


def write_results(batch: list[Graded], out: Path, selected: list[str]) -> None:
    """results.json per submission, then gradebook.csv and junit.xml, each written whole (``write_atomic``)."""
    for graded in batch:
        folder = out / graded.handin.name
        folder.mkdir(parents=True, exist_ok=True)
        report = gradescope(graded.results, graded.seconds, summary(graded, selected))
        write_atomic(folder / RESULTS, json.dumps(report, indent=2).encode("utf-8"))
    write_atomic(out / GRADEBOOK, gradebook(batch, selected))
    tree = junit(batch)
    ElementTree.indent(tree)
    xml = io.BytesIO()
    tree.write(xml, encoding="utf-8", xml_declaration=True)
    write_atomic(out / JUNIT, xml.getvalue())
