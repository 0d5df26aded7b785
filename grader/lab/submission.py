"""Loading a learner's folder (laid out like ``exercises/``) as a package of its own.

The folder is imported under a private package name, so it never collides with the project's own
``exercises`` or ``solutions``, and its modules can import each other relatively
(``from .loss import distillation_loss``). A module that fails to import (a syntax error, a bad
import) is recorded with its file and line, and the reference module stands in for it so that the
other topics can still be graded.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from grader.course.topics import topics

PACKAGE = "learnkd_submission"


@dataclass
class LoadError:
    """Why one file of a submission could not be loaded, in words for the learner."""
    file: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.message}"


class NotLoaded(Exception):
    """A module of the submission that failed to load was asked for: its load error, in words."""


@dataclass
class Submission:
    """The learner's modules by file stem ('loss', 'train', ...) and the files that failed to load."""
    folder: Path
    package: ModuleType
    modules: dict[str, ModuleType] = field(default_factory=dict)
    errors: dict[str, LoadError] = field(default_factory=dict)

    def __getattr__(self, stem: str) -> ModuleType:
        """The learner's module ``stem``; a check that asks for a file that failed to load fails with its error."""
        if stem in self.modules:
            return self.modules[stem]
        if stem in self.errors:
            raise NotLoaded(str(self.errors[stem]))
        raise AttributeError(stem)


def display_path(path: Path | str) -> str:
    """A path as the learner knows it: relative to the working folder when it is below it."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def forbidden_import(source: str, filename: str) -> LoadError | None:
    """The first import of the reference or the grader in ``source``, if any (the worker's own check)."""
    from grader.worker.serve import forbidden_import as find

    found = find(source, filename)
    return LoadError(filename, found["line"], found["message"]) if found else None


def _error_from_exception(err: BaseException, folder: Path, filename: str) -> LoadError:
    """Why a file did not import, at the learner's line: the worker's own reading (``serve.load_error``)."""
    from grader.worker.serve import load_error

    found = load_error(err, folder, filename)
    file = filename if found["file"] == filename else display_path(folder / found["file"])
    return LoadError(file, found["line"], found["message"])


def _fresh_package(folder: Path, name: str) -> ModuleType:
    for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
        del sys.modules[key]
    spec = importlib.util.spec_from_loader(name, loader=None, is_package=True)
    package = importlib.util.module_from_spec(spec)
    package.__path__ = [str(folder)]
    package.__file__ = None
    sys.modules[name] = package
    return package


def load_submission(folder: str | Path, reference: dict[str, ModuleType] | None = None,
                    name: str = PACKAGE) -> Submission:
    """Import every topic file of ``folder`` as ``<name>.<stem>``.

    Files load in course order; when one fails, ``reference[stem]`` (if given) takes its place so
    that the modules importing it still load.
    """
    folder = Path(folder).resolve()
    package = _fresh_package(folder, name)
    submission = Submission(folder, package)
    importlib.invalidate_caches()
    for topic in topics():
        stem = topic.file.removesuffix(".py")
        path = folder / topic.file
        shown = display_path(path)
        if not path.is_file():
            submission.errors[stem] = LoadError(shown, None, f"is missing: the folder must hold {topic.file}, as exercises/ does.")
        else:
            source = path.read_text(errors="replace")
            problem = forbidden_import(source, shown)
            if problem:
                submission.errors[stem] = problem
            else:
                try:
                    submission.modules[stem] = importlib.import_module(f"{name}.{stem}")
                    continue
                except BaseException as err:  # a learner's module can raise anything, SystemExit too
                    sys.modules.pop(f"{name}.{stem}", None)
                    submission.errors[stem] = _error_from_exception(err, folder, shown)
        if reference and stem in reference:
            sys.modules[f"{name}.{stem}"] = reference[stem]
            setattr(package, stem, reference[stem])
    return submission
