"""The judge's run, as the checks see it: its worker, its request, where progress goes.

``grader.grading.judge`` fills these in before pytest starts; the checks' fixtures
(grader/checks/conftest.py), ``remote`` and ``phases`` read them. They live here, not in the judge,
so that nothing the judge runs imports the judge back.
"""

from __future__ import annotations

remote = None  # grader.grading.remote.Remote
request = None  # grader.grading.request.GradingRequest
# A stream to the real terminal, for progress of long checks (pytest captures sys.stderr).
progress_stream = None
# True when the run's output goes to a log or a pipe, not a terminal: long checks then show no progress bars.
quiet = False


def progress(text: str) -> None:
    """Show a progress line to the learner while a long check runs."""
    if progress_stream is not None:
        progress_stream.write(text + "\n")
        progress_stream.flush()


def topic_of(item) -> str:
    """The topic whose marker a collected check carries ("other" when none)."""
    from grader.course.topics import ALL, topic_names

    for name in [*topic_names(), ALL]:
        if item.get_closest_marker(name):
            return name
    return "other"
