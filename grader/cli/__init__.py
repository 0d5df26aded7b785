"""The ``learnkd`` command: a thin click layer that parses, calls the grader's functions, and prints.

Exit codes: 0 when everything selected passes, 1 when a check fails, 2 for usage or environment errors.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import sys
import time
from pathlib import Path

import click

from grader.cli.common import DEVICES, EXIT_FAILED, EXIT_USAGE, UserError, submission_folder  # noqa: F401
from grader.course.topics import ALL, get_topic, topic_names, topics
from grader.grading.results import MARK


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="learnkd")
def cli():
    """learnkd: hands-on knowledge distillation on MNIST, with a grader that says what is wrong.

    Fill in the stubs in exercises/, then run `learnkd check` to grade the next topic.
    """


# ---------------------------------------------------------------------------------------------------
# check


# `learnkd watch` keeps its judges' fork server (grader.grading.warm_judges) under this key of click's obj, which
# the `check` it invokes shares
WARM_JUDGES = "learnkd.warm_judges"


def progress_bar(progress) -> str:
    names = topic_names()
    marks = "  ".join(f"{n} {MARK[progress.status(n) or 'not started']}" for n in names)
    done = sum(progress.status(n) == "done" for n in names)
    width = 16
    filled = round(width * done / len(names))
    of = f" of {progress.notebook}" if getattr(progress, "notebook", None) else ""
    return f"progress{of}  {marks}   [{'#' * filled}{'.' * (width - filled)}] {done}/{len(names)}"


LABEL_WIDTH = len("end to end") + 1  # the widest label, and a space before the mark
# A sentence of a message that is this long and already said above is not said again, but referred to.
REPEATED_SENTENCE = 60


class Explained:
    """The long sentences already printed in one command's output: a message that repeats them refers to
    them instead ("Same cause as above: the soft term is missing its T**2 factor.")."""

    SENTENCE_END = re.compile(r"(?<=[.?!])(?<!e\.g\.)(?<!i\.e\.)(?<! al\.)(?<!vs\.)\s+(?=[A-Za-z(`])")

    def __init__(self):
        self.said: set[str] = set()

    @staticmethod
    def gist(sentence: str) -> str:
        """The sentence's first clause (up to a colon), lower-cased where it starts with an ordinary word."""
        head = sentence.split(": ", 1)[0].rstrip(".")
        if len(head) > 120:
            head = head[:117].rsplit(" ", 1)[0] + "..."
        word = head.split(" ", 1)[0]
        if len(word) > 1 and word[0].isupper() and word[1:].isalpha() and word[1:].islower():
            head = head[0].lower() + head[1:]
        return head

    def shorten(self, message: str) -> str:
        """``message`` with each run of long sentences said before replaced by one reference to them."""
        sentences = self.SENTENCE_END.split(message)
        out, run = [], []
        for sentence in sentences + [None]:
            if sentence is not None and len(sentence) >= REPEATED_SENTENCE and sentence in self.said:
                run.append(sentence)
                continue
            if run:
                out.append(f"Same cause as above: {self.gist(run[0])}.")
                run = []
            if sentence is not None:
                out.append(sentence)
        self.said.update(s for s in sentences if len(s) >= REPEATED_SENTENCE)
        return " ".join(out)


def print_topic(topic, verbose: bool, explained: Explained | None = None) -> None:
    from grader.grading.results import DONE, FAILING, NOT_STARTED

    explained = explained or Explained()
    status, total = topic.status, len(topic.checks)
    color = {DONE: "green", FAILING: "red", NOT_STARTED: "yellow"}[status]
    label = f"{'end to end' if topic.name == ALL else topic.name:<{LABEL_WIDTH}}"
    if topic.name == ALL and topic.checks and all(c.status == "skipped" for c in topic.checks):
        click.echo(f"{label}{click.style('·', fg='yellow')}  skipped: {topic.checks[0].message}")
        return
    if status == NOT_STARTED:
        first = next((c for c in topic.checks if c.not_started), None)
        reason = first.message.removeprefix("not started: ").removeprefix(f"{topic.name}: ") if first else "no check ran"
        click.echo(f"{label}{click.style('·', fg=color)}  not started: {reason}")
        return
    click.echo(f"{label}{click.style(MARK[status], fg=color)}  {topic.passed}/{total} checks")
    shown = set()
    for check in topic.checks:
        if check.passed:
            # a check's report goes under its own line, never under another check's
            if verbose or check.output:
                timing = f"  ({check.duration:.2f} s)" if verbose else ""
                click.echo(f"  {click.style('✓', fg='green')} {check.name}{timing}")
            if check.output:
                click.echo(check.output)
            continue
        if check.status == "skipped":
            click.echo(f"  · {check.name}: skipped: {check.message}")
            continue
        key = check.message
        if key in shown and not verbose:
            continue  # one broken file fails many checks with the same message: say it once
        shown.add(key)
        same = sum(c.message == key for c in topic.failed)
        more = f"  ({same} checks)" if same > 1 and not verbose else ""
        click.echo(f"  {click.style('✗', fg='red')} {check.name}: {explained.shorten(check.message)}{more}")
        for frame in check.frames[-3:] if not verbose else check.frames:
            click.echo(f"      at {frame}")
        if check.output:
            click.echo(check.output)
    if status == FAILING and topic.name != ALL:
        click.echo(f"  stuck? learnkd hint {topic.name}")


@cli.command()
@click.argument("topic", required=False, type=click.Choice([*topic_names(), ALL]))
@click.option("--path", type=click.Path(path_type=Path), help="Grade this folder (laid out like exercises/) instead of ./exercises.")
@click.option("--solutions", is_flag=True, help="Grade the reference solutions (for instructors).")
@click.option("--notebook", type=click.Path(dir_okay=False, path_type=Path),
              help="Grade the exercise cells (tagged learnkd:TOPIC) of this lab notebook instead of ./exercises.")
@click.option("--json", "json_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the results in Gradescope's results.json format to this file.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder holding MNIST/raw/ (default: $LEARNKD_DATA, then a per-user cache; downloaded when missing).")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True,
              help="Where the end-to-end training of `all` runs.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the checks and the training.")
@click.option("--no-cache", is_flag=True, help="Train the teacher of `all` again even when a cached one fits your code.")
@click.option("-v", "--verbose", is_flag=True, help="Show every check, passing ones too, with full locations.")
def check(topic, path, solutions, notebook, json_file, data_dir, device, seed, no_cache, verbose):
    """Grade TOPIC (models, loss, train, evaluate, or all); without TOPIC, the next one not done.

    `all` grades every topic, then (once they pass) trains your Teacher, distils your Student and
    trains the same Student on hard labels on real MNIST, and prints the comparison.
    """
    from grader.grading import GradingError, check_data, check_device, project_of, run_grading
    from grader.course.progress import Progress
    from grader.grading.request import GradingRequest
    from grader.grading.results import by_topic, gradescope

    if notebook and (path or solutions):
        raise UserError("--notebook, --path and --solutions each name what to grade: give one of them.")
    folder = None if notebook else submission_folder(path, solutions)
    progress = None if solutions else Progress.of_notebook(notebook) if notebook else Progress(project_of(folder))
    if topic is None:
        topic = (progress.next_topic() if progress else None) or ALL
        click.echo(f"grading the next topic not done: {topic}" if topic != ALL else
                   "every topic is done: grading all, end to end on MNIST")
    lab = notebook_submission(notebook, topic) if notebook else None
    folder = lab.folder if lab else folder
    if topic == ALL:  # minutes of work: say so at once (checking the data takes a second, PyTorch seconds to load)
        click.echo("grading all: every topic's checks, then three trainings on MNIST (minutes); checking the data",
                   err=True)
    from grader.course.points import PointsError, load_points

    try:
        check_device(device)
        if topic == ALL or get_topic(topic).uses_mnist:
            check_data(str(data_dir) if data_dir else None)
        if json_file:
            load_points()  # --json writes each check's points: a malformed points file is said before grading
    except (GradingError, PointsError) as err:
        raise UserError(str(err)) from None
    from grader.lab.teacher_cache import default_cache_dir

    request = GradingRequest(path=str(folder), topics=[topic], device=device,
                             data_dir=str(Path(data_dir).resolve()) if data_dir else None, seed=seed,
                             cache_dir=None if no_cache else str(default_cache_dir()), verbose=verbose)
    from grader.grading import sandbox

    if sandbox.kind() == sandbox.NONE:
        click.echo(click.style(f"note: {sandbox.NO_ISOLATION}", fg="yellow"), err=True)
    shared = click.get_current_context().obj
    grading = run_grading(request, judges=shared.get(WARM_JUDGES) if isinstance(shared, dict) else None)
    if lab:
        lab.locate_results(grading.results)  # file:line of the written files -> notebook cells
    selected = topic_names() + [ALL] if topic == ALL else [topic]
    results = by_topic(grading.results, selected)
    explained = Explained()
    for result in results:
        print_topic(result, verbose, explained)
    if grading.crash:
        click.echo(click.style(f"note: {grading.crash}", fg="red"))
    if progress:
        for result in results:
            if result.name != ALL and result.checks:
                progress.record(result.name, result.status, result.passed, len(result.checks))
        progress.save()
        click.echo(progress_bar(progress))
    ok = all(r.status == "done" for r in results) and not grading.crash
    if json_file:
        summary = f"learnkd check {topic}: " + ", ".join(f"{r.name} {r.status}" for r in results)
        json_file.parent.mkdir(parents=True, exist_ok=True)
        json_file.write_text(json.dumps(gradescope(grading.results, grading.seconds, summary), indent=2))
    if verbose:
        click.echo(f"graded in {grading.seconds:.1f} s")
    sys.exit(0 if ok else EXIT_FAILED)


# ---------------------------------------------------------------------------------------------------
# watch


@cli.command()
@click.option("--path", type=click.Path(path_type=Path), help="Watch this folder (laid out like exercises/) instead of ./exercises.")
@click.option("--notebook", type=click.Path(dir_okay=False, path_type=Path),
              help="Watch this lab notebook and grade its exercise cells.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder holding MNIST/raw/ (default: $LEARNKD_DATA, then a per-user cache).")
@click.option("--poll", is_flag=True, help="Look for changes every quarter second instead of asking the system.")
@click.pass_context
def watch(ctx, path, notebook, data_dir, poll):
    """Check the next topic not done, again each time you save, until every topic passes (Ctrl-C stops)."""
    from grader.course.progress import Progress
    from grader.course.watching import snapshot, wait_for_change
    from grader.grading import project_of, sandbox, warm_judges

    if notebook and path:
        raise UserError("--notebook and --path each name what to watch: give one of them.")
    if notebook and not notebook.is_file():
        raise UserError(f"--notebook {notebook}: there is no such file. `learnkd notebook` writes the lab notebook.")
    folder = None if notebook else submission_folder(path, False)
    target = notebook.resolve() if notebook else folder
    try:
        with contextlib.ExitStack() as warm:
            shared = ctx.ensure_object(dict)
            while True:
                progress = Progress.of_notebook(notebook) if notebook else Progress(project_of(folder))
                topic = progress.next_topic()
                if topic is None:
                    click.echo(progress_bar(progress))
                    click.echo("every topic passes: run `learnkd check all` to train your models end to end on MNIST.")
                    return
                click.clear()
                click.echo(f"learnkd watch: checking {topic} ({time.strftime('%H:%M:%S')}; Ctrl-C stops)", err=True)
                args = dict(topic=topic, path=None if notebook else folder, notebook=notebook, data_dir=data_dir)
                graded = snapshot([target])  # the files as this check reads them: a save during it counts
                if WARM_JUDGES not in shared:  # PyTorch and the checks load once, at the first check, not at each;
                    # the zygote loads what training needs only if a topic left now trains (a topic reset later is
                    # checked all the same: its workers import it themselves)
                    shared[WARM_JUDGES] = warm.enter_context(warm_judges(sandbox.kind(), topics=progress.topics_left()))
                try:
                    ctx.invoke(check, **args)
                except SystemExit as done:
                    if done.code == 0:
                        continue  # passed: on to the next topic
                except click.ClickException as err:  # a half-saved notebook, a cell that does not parse: say it, wait
                    err.show()
                click.echo(f"watching {target} for your next save...", err=True)
                changed, how = wait_for_change([target], polling=poll, since=graded)
                names = ", ".join(p.name for p in changed[:3]) or "a file"
                click.echo(f"{names} changed ({how}, {time.strftime('%H:%M:%S')})", err=True)
    except KeyboardInterrupt:
        click.echo("\nstopped: your progress is saved (`learnkd progress` shows it; `learnkd watch` goes on).",
                   err=True)


# ---------------------------------------------------------------------------------------------------
# progress, hint, reset, list


def learner_progress():
    from grader.grading import project_of
    from grader.course.progress import Progress

    return Progress(project_of(submission_folder(None, False)))


@cli.command("progress")
def progress_command():
    """Show each topic's status and checks passed, and an overall bar."""
    progress = learner_progress()
    for t in topics():
        entry = progress.entry(t.name)
        status = entry.get("status", "not started")
        counts = f"{entry['passed']}/{entry['total']} checks" if "total" in entry else ""
        click.echo(f"{t.name:<10}{MARK.get(status, '·')}  {status:<12}{counts:<14}{t.title}")
    click.echo(progress_bar(progress))
    nxt = progress.next_topic()
    click.echo(f"next: learnkd check {nxt}" if nxt else "every topic is done: learnkd check all")


@cli.command()
@click.argument("topic", type=click.Choice(topic_names()))
@click.option("--all", "show_all", is_flag=True, help="Show every hint of the topic at once.")
def hint(topic, show_all):
    """Show the next hint for TOPIC (one more each time)."""
    progress = learner_progress()
    hints = get_topic(topic).hints
    shown = len(hints) if show_all else progress.show_hint(topic, len(hints))
    if show_all:
        progress.data["hints"][topic] = len(hints)
    for number in range(1, shown + 1):
        click.echo(f"hint {number}/{len(hints)} ({topic}): {hints[number - 1]}")
    if shown < len(hints):
        click.echo(f"(run `learnkd hint {topic}` again for the next one)")
    else:
        click.echo("(that was the last hint)")
    progress.save()


@cli.command()
@click.argument("topic", type=click.Choice(topic_names()))
def reset(topic):
    """Put back the original stub of TOPIC's file, after backing up your version."""
    from grader.course.stubs import SOLUTIONS, exercise_file
    from grader.grading import project_of

    folder = submission_folder(None, False)
    t = get_topic(topic)
    target = folder / t.file
    backup_dir = project_of(folder) / ".learnkd" / "backups"
    if target.exists():
        backup_dir.mkdir(parents=True, exist_ok=True)
        backup = backup_dir / f"{target.stem}-{time.strftime('%Y%m%d-%H%M%S')}{target.suffix}"
        n = 1
        while backup.exists():
            backup = backup.with_name(f"{target.stem}-{time.strftime('%Y%m%d-%H%M%S')}-{n}{target.suffix}")
            n += 1
        shutil.copy2(target, backup)
        click.echo(f"your {t.file} is backed up as {backup}")
    fresh = target.with_name(f".{target.name}.learnkd-tmp")
    fresh.write_text(exercise_file((SOLUTIONS / t.file).read_text(), topic, t.file))
    fresh.replace(target)  # whole or not at all
    progress = learner_progress()
    progress.data["topics"].pop(topic, None)
    progress.save()
    click.echo(f"{target} is the original stub again.")


@cli.command("list")
def list_command():
    """List the topics in course order, with their files."""
    for number, t in enumerate(topics(), start=1):
        click.echo(f"{number}. {t.name:<10}exercises/{t.file:<13}{t.title}")
    click.echo(f"   {ALL:<10}{'(every file)':<23}end to end on real MNIST, once the topics pass")


# ---------------------------------------------------------------------------------------------------
# notebook


def notebook_submission(notebook: Path, topic: str):
    """The notebook's exercise cells written as a submission folder that lives as long as the command."""
    import tempfile

    from grader.notebook.build import NotebookError, write_submission

    tmp = click.get_current_context().with_resource(tempfile.TemporaryDirectory(prefix="learnkd-notebook-"))
    try:
        return write_submission(notebook, Path(tmp) / "exercises", [topic])
    except NotebookError as err:
        raise UserError(str(err)) from None


@cli.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Where to write it (default: learnkd-lab.ipynb, or learnkd-lab-solutions.ipynb with --solutions).")
@click.option("--solutions", is_flag=True, help="Fill in the exercise cells with the reference (for instructors).")
@click.option("--force", is_flag=True, help="Overwrite the file if it exists.")
def notebook(out, solutions, force):
    """Write the lab notebook: the whole lab, with the exercises as cells tagged learnkd:TOPIC.

    Grade its cells with `learnkd check TOPIC --notebook FILE`.
    """
    from grader.notebook.build import DEFAULT_NAME, write_notebook

    out = out or Path(DEFAULT_NAME.replace(".ipynb", "-solutions.ipynb") if solutions else DEFAULT_NAME)
    if out.exists() and not force:
        raise UserError(f"{out} already exists and may hold your work: give another --out, or add --force "
                        f"to overwrite it.")
    write_notebook(out, solutions)
    what = "with the reference solutions filled in" if solutions else "with the exercise stubs"
    click.echo(f"wrote {out} ({what}); grade it with `learnkd check TOPIC --notebook {out}`")


# ---------------------------------------------------------------------------------------------------
# grade, gradescope-bundle (instructors)


def topic_list(text: str) -> list[str]:
    names = [t for t in re.split(r"[,\s]+", text.strip()) if t]
    unknown = [t for t in names if t not in [*topic_names(), ALL]]
    if unknown or not names:
        raise UserError(f"--topics {text}: name topics among {', '.join([*topic_names(), ALL])}, separated by commas.")
    return names


@cli.command()
@click.argument("submissions", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for <name>/results.json, gradebook.csv and junit.xml.")
@click.option("-j", "--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Submissions graded at once (each in its own process).")
@click.option("--topics", "topics_text", default=",".join(topic_names()), show_default=True,
              help="Comma-separated topics to grade; add `all` for the end-to-end run on MNIST (slow).")
@click.option("--timeout", type=click.FloatRange(min=1), default=None,
              help="Wall-clock seconds per submission [default: 120, or 1800 with all].")
@click.option("--memory", "memory_mb", type=click.IntRange(min=0), default=None,
              help="Megabytes of address space per submission (RLIMIT_AS); 0: no limit [default: 8192].")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder holding MNIST/raw/ (for all).")
@click.option("--device", type=click.Choice(DEVICES), default="cpu", show_default=True, help="Where `all` trains.")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed of the checks and the training.")
@click.option("--no-sandbox", is_flag=True,
              help="Run the submissions' code without isolation (where no sandbox can be made; trusted code only).")
def grade(submissions, out, jobs, topics_text, timeout, memory_mb, data_dir, device, seed, no_sandbox):
    """Grade a class: each SUBMISSION (a folder like exercises/, a notebook, or a .zip of either) in a
    sandbox of its own, with a time and a memory limit. Writes a Gradescope results.json per
    submission, a CSV gradebook, a JUnit XML report and class-report.html into --out. Points:
    grader/course/points.toml.
    """
    from grader.classroom.batch import NO_SANDBOX, Options, SandboxMissing, grade_batch, sandbox_for, selected_topics
    from grader.grading import MEMORY_LIMIT_MB, GradingError, sandbox
    from grader.course.points import PointsError, load_points

    chosen = topic_list(topics_text)
    selected = selected_topics(chosen)
    try:
        load_points()  # a malformed points file is said before minutes of grading, not after
    except PointsError as err:
        raise UserError(str(err)) from None
    options = Options(chosen, jobs, timeout, MEMORY_LIMIT_MB if memory_mb is None else memory_mb, seed,
                      str(data_dir.resolve()) if data_dir else None, device,
                      sandbox=sandbox.NONE if no_sandbox else None)
    try:
        sandbox_for(options)
    except SandboxMissing as err:
        raise UserError(str(err)) from None
    if no_sandbox:
        click.echo(click.style(NO_SANDBOX, fg="yellow"), err=True)

    def done(graded):
        if graded.handin.problem:
            click.echo(f"{graded.handin.name:<24}" + click.style(graded.handin.problem, fg="red"))
            return
        scores = graded.scores(selected)
        parts = "  ".join(f"{t} {e:g}/{p:g}" for t, (e, p) in scores.items())
        total = sum(e for e, _ in scores.values())
        click.echo(f"{graded.handin.name:<24}{parts}  total {total:g}  ({graded.seconds:.1f} s)")
        if graded.crash:
            click.echo(click.style(f"  note: {graded.crash[:300]}", fg="red"))

    from grader.classroom.report import write_report

    try:
        batch = grade_batch(list(submissions), out, options, on_done=done)
        report = write_report(out)
    except GradingError as err:  # no sandbox here, or --out cannot be written: one paragraph
        raise UserError(str(err)) from None
    except OSError as err:
        raise UserError(f"The class report could not be written in {out} ({err}); the gradebook is there: run "
                        f"`learnkd class-report {out}` once the folder can be written.") from None
    click.echo(f"graded {len(batch)} submissions: {out / 'gradebook.csv'}, {out / 'junit.xml'}, "
               f"{out}/<name>/results.json, and the class report {report}")


@cli.command("class-report")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
def class_report(folder):
    """Write FOLDER/class-report.html again from the gradebook and results a `learnkd grade --out FOLDER` left."""
    from grader.classroom.report import ReportError, write_report

    try:
        path = write_report(folder)
    except ReportError as err:
        raise UserError(str(err)) from None
    except OSError as err:
        raise UserError(f"{folder}/class-report.html could not be written ({err}).") from None
    click.echo(f"wrote {path}: open it in a browser (it needs nothing else)")


@cli.command("gradescope-bundle")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder for setup.sh, run_autograder, learnkd/ and autograder.zip (upload the zip).")
@click.option("--topic", type=click.Choice([*topic_names(), ALL]), default=ALL, show_default=True,
              help="What each submission is graded on.")
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Ship this MNIST folder (holding MNIST/raw/) in the bundle; else setup.sh downloads it.")
def gradescope_bundle(out, topic, data_dir):
    """Write the Gradescope autograder bundle that runs `learnkd check TOPIC --json` per submission."""
    from grader.classroom.gradescope import write_bundle

    for path in write_bundle(out, topic, data_dir):
        click.echo(f"wrote {path}")


@cli.command("github-classroom")
@click.option("--out", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="The assignment's template repository: the workflow goes to OUT/.github/workflows/classroom.yml.")
@click.option("--force", is_flag=True, help="Replace an existing workflow (kept as classroom.yml.bak).")
@click.option("--install", default=None, metavar="SPEC",
              help="What `pip install` installs on the runner: your course's copy of learnkd (a git URL or a "
                   "package name). Default: learnkd @ git+https://github.com/learnkd/learnkd.git.")
def github_classroom(out, force, install):
    """Write the GitHub Classroom workflow: one autograding step per topic (`learnkd check TOPIC`), points from
    points.toml, and the reporter step."""
    from grader.classroom.github import INSTALL_SPEC, ClassroomError, write_workflow

    try:
        path = write_workflow(out, force, install or INSTALL_SPEC)
    except ClassroomError as err:
        raise UserError(str(err)) from None
    click.echo(f"wrote {path}: commit it to the assignment's template repository (with exercises/ at its root)")


# reference, report, experiment: the commands that train on MNIST and draw (grader/cli/reference.py)
from grader.cli.reference import experiment, reference, report  # noqa: E402

cli.add_command(reference)
cli.add_command(report)
cli.add_command(experiment)


def main() -> None:
    from grader.course.points import PointsError
    from grader.lab.cores import wait_asleep

    wait_asleep()  # before anything imports PyTorch: `reference`, `report` and `experiment` train in this process
    try:
        cli(prog_name="learnkd")
    except PointsError as err:  # a points file that broke after the start (`check --json` reads it first): exit 2
        UserError(str(err)).show()
        sys.exit(EXIT_USAGE)
