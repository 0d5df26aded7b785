"""Guards in the grading process that keep the learner's code away from the grader and the reference.

The checks and the learner's code share one Python process, so nothing here is a sandbox: it closes
the doors a submission could use to pass without doing the work, and says so when one is tried.

- An audit hook (PEP 578; it cannot be removed) refuses, when the code asking is the learner's: looking
  at the call stack (``sys._getframe``, a traceback's or generator's frame, ``inspect.stack``), reading
  a function's ``__code__``, ``gc`` searches, trace and profile functions, ``ctypes``, starting
  programs or processes, sending signals, reading the grader's or the reference's files or another
  process's memory, writing outside the run's scratch folder (and the learner's own places), and
  making code that claims to be the grader's or a library's.
- An import blocker refuses ``solutions``, ``grader`` and ``learnkd_submission`` imports from the
  learner's code (the static check in ``grader.submission`` catches the plain ``import`` statements;
  this catches ``importlib.import_module``, ``__import__`` and the like), and the ``solutions``
  modules are taken out of ``sys.modules`` once the ``reference`` fixture holds them.
- A snapshot of the functions the checks rely on (Python's built-ins, PyTorch, pytest, the grader,
  ``sys.meta_path``) is compared after loading the submission and after every check: a submission
  that replaced one (``torch.allclose = lambda *a, **k: True``) fails every check, and the originals
  are put back.

"The learner's code is asking" when one of its frames is anywhere on the stack, so that a library
function calling back what it is given (``tree_map(open, [path])``) does not launder the request.
Learner frames are those of the submission folder and of any file that is neither the grader's, the
reference's, the standard library's nor an installed package's (a file the learner wrote elsewhere).
Imports the learner's code sets off (a lazily imported library module) are let through: the import
system is then between the event and the learner's frame. Two requests that PyTorch, typing and
inspect make for themselves in ordinary use, below the learner's frames (``sys._getframe`` and
reading a library function's ``__code__``), are refused only when the innermost frame that is not the
standard library's is the learner's: these two can still be laundered through a library callback.
"""

from __future__ import annotations

import builtins
import functools
import hashlib  # noqa: F401 (loaded before the snapshot: the channel signs with them)
import hmac  # noqa: F401
import json  # noqa: F401
import os
import site
import sys
import sysconfig
import threading
import types
from pathlib import Path

FORBIDDEN_IMPORTS = ("solutions", "grader", "learnkd_submission")  # as grader.submission.FORBIDDEN_IMPORTS
HIDDEN = "solutions"  # the reference: out of sys.modules whenever learner code may run
DEBUG_ENV = "LEARNKD_GUARD_DEBUG"  # set: each refusal prints the stack that asked to stderr

GRADER_DIR = os.path.realpath(Path(__file__).resolve().parent)
SOLUTIONS_DIR = os.path.realpath(Path(GRADER_DIR).parent / "solutions")

LEARNER, TRUSTED, STDLIB = "learner", "trusted", "stdlib"
FRAME_ATTRIBUTES = {"tb_frame", "gi_frame", "cr_frame", "ag_frame", "f_back"}
# Standard-library functions that call sys._getframe only to learn their caller's module name.
MODULE_NAME_READERS = {"namedtuple", "_caller", "_create_", "_make_class_unpicklable"}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
PROCESS_EVENTS = ("os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork", "os.forkpty",
                  "subprocess.Popen", "pty.spawn", "os.startfile")
SIGNAL_EVENTS = ("os.kill", "os.killpg", "signal.pthread_kill", "resource.prlimit")
FILE_EVENTS = ("os.remove", "os.rmdir", "os.rename", "os.symlink", "os.link", "os.truncate", "os.chmod",
               "os.chown", "os.mkdir", "os.utime", "shutil.rmtree", "shutil.copyfile", "shutil.move")


class Forbidden(PermissionError):
    """What the learner's code tried and may not do while it is graded."""


class ForbiddenImport(ImportError):
    """An import of the reference or the grader by the learner's code."""


def under(path: str, roots) -> bool:
    return any(path == root or path.startswith(root.rstrip(os.sep) + os.sep) for root in roots)


def message(what: str) -> str:
    return (f"learnkd: your code {what}. A submission may not do this while it is graded: it could reach the "
            "grader's reference values or its results. Compute the answer from the arguments you are given.")


class Guard:
    """The audit hook, the import blocker, and the snapshot of the functions the checks rely on."""

    def __init__(self, folder: str | Path, writable=(), protect=()):
        self.folder = os.path.realpath(folder)  # the learner's own folder: readable and writable, always
        self.protected = [GRADER_DIR, SOLUTIONS_DIR, *map(os.path.realpath, protect)]
        paths = sysconfig.get_paths()
        sites = {paths["purelib"], paths["platlib"], *site.getsitepackages()}
        if site.ENABLE_USER_SITE:
            sites.add(site.getusersitepackages())
        self.trusted = sorted({os.path.realpath(p) for p in sites} | {GRADER_DIR, SOLUTIONS_DIR})
        self.stdlib = sorted({os.path.realpath(paths["stdlib"]), os.path.realpath(paths["platstdlib"])})
        self.writable = [self.folder, *map(os.path.realpath, writable)]
        self.active = False
        self.violations: list[str] = []  # what the learner's code tried, since the last take_violations()
        self.snapshot: dict = {}
        self._kinds: dict[str, str] = {}
        self._busy = threading.local()
        self._import = builtins.__import__
        self.handlers = {"open": self.on_open, "object.__getattr__": self.on_getattr, "compile": self.on_compile,
                         "exec": self.on_exec, "code.__new__": self.on_code_new, "function.__new__": self.on_function_new,
                         "marshal.loads": self.deny_outside_imports("loaded marshalled code")}
        self.handlers["sys._getframe"] = self.on_getframe
        # pytest-timeout reads every thread's frames when it stops a check, with the learner's loop below it
        self.handlers["sys._current_frames"] = self.deny_direct("looked at the call stack (sys._current_frames)")
        for event, what in [("sys.settrace", "installed a trace function (sys.settrace)"),
                            ("sys.setprofile", "installed a profile function (sys.setprofile)"),
                            ("sys.addaudithook", "installed an audit hook"),
                            ("gc.get_objects", "searched the interpreter's objects (gc.get_objects)"),
                            ("gc.get_referrers", "searched the interpreter's objects (gc.get_referrers)"),
                            ("gc.get_referents", "searched the interpreter's objects (gc.get_referents)"),
                            *[(e, "started another program or process") for e in PROCESS_EVENTS],
                            *[(e, "sent a signal to a process or changed its limits") for e in SIGNAL_EVENTS]]:
            self.handlers[event] = self.deny(what)
        for event in FILE_EVENTS:
            self.handlers[event] = self.on_file_change

    # -- whose code is asking ----------------------------------------------------------------------

    def kind(self, filename: str) -> str:
        kind = self._kinds.get(filename)
        if kind is None:
            if filename.startswith("<"):
                kind = STDLIB  # frozen importlib, <string> from exec: runs on its caller's behalf
            else:
                path = os.path.realpath(filename)
                kind = (LEARNER if under(path, [self.folder]) else TRUSTED if under(path, self.trusted)
                        else STDLIB if under(path, self.stdlib) else LEARNER)
            self._kinds[filename] = kind
        return kind

    def asker(self, frame) -> tuple[bool, bool]:
        """(is a learner frame on the stack, is the import system between it and ``frame``, the event's frame)."""
        via_import = trusted = False
        while frame is not None:
            filename = frame.f_code.co_filename
            if filename.startswith("<frozen importlib"):
                via_import = True
            kind = self.kind(filename)
            if kind == LEARNER:
                return True, via_import
            trusted = trusted or kind == TRUSTED
            frame = frame.f_back
        return not trusted, via_import  # only the standard library on the stack: a thread the learner started

    def innermost_is_learner(self, frame) -> bool:
        """Whether the innermost frame that is not the standard library's is the learner's."""
        while frame is not None:
            kind = self.kind(frame.f_code.co_filename)
            if kind != STDLIB:
                return kind == LEARNER
            frame = frame.f_back
        return True

    # -- the audit hook ----------------------------------------------------------------------------

    def hook(self, event: str, args: tuple) -> None:
        handler = self.handlers.get(event)
        if handler is None:
            if not event.startswith("ctypes."):
                return
            handler = self.handlers[event] = self.deny_outside_imports("used ctypes")
        if not self.active or getattr(self._busy, "on", False):
            return
        self._busy.on = True
        try:
            handler(sys._getframe(1), args)
        finally:
            self._busy.on = False

    def refuse(self, what: str, error=Forbidden):
        self.violations.append(what)
        if os.environ.get(DEBUG_ENV):  # for instructors chasing a false alarm: who asked, from where
            import traceback

            print(f"learnkd guard: refused: {what}", "".join(traceback.format_stack()[:-2]), sep="\n",
                  file=self._debug, flush=True)
        raise error(message(what))

    def deny(self, what: str):
        def handler(frame, args):
            if self.asker(frame)[0]:
                self.refuse(what)
        return handler

    def deny_direct(self, what: str):
        """Refuse only when the learner's code itself asks, not a library that the learner's code is below."""
        def handler(frame, args):
            if self.innermost_is_learner(frame):
                self.refuse(what)
        return handler

    def deny_outside_imports(self, what: str):
        def handler(frame, args):
            learner, via_import = self.asker(frame)
            if learner and not via_import:
                self.refuse(what)
        return handler

    def on_getframe(self, frame, args):
        code = frame.f_code
        if code.co_filename == __file__ or (self.kind(code.co_filename) == STDLIB and code.co_name in MODULE_NAME_READERS):
            return  # the guard's own look at its caller; a helper that only names the caller's module
        if self.innermost_is_learner(frame):
            self.refuse("looked at the call stack (sys._getframe, inspect.stack, traceback, logging)")

    def on_getattr(self, frame, args):
        if len(args) < 2 or args[1] not in FRAME_ATTRIBUTES | {"__code__"}:
            return
        if args[1] == "__code__":  # the learner's own functions' code is theirs (torch.no_grad() reads it)
            code = getattr(args[0], "__code__", None)
            if code is None or self.kind(code.co_filename) == LEARNER or not self.innermost_is_learner(frame):
                return
            self.refuse("read the code object (__code__) of a function that is not yours")
        if self.asker(frame)[0]:
            self.refuse(f"looked at the call stack (.{args[1]})")

    def sensitive_read(self, path: str) -> bool:
        if under(path, [self.folder]):
            return False
        if under(path, self.protected):
            return True
        parts = path.split(os.sep)  # /proc/<pid>/mem, /proc/<pid>/fd/...: another process's or our own insides
        return len(parts) > 3 and parts[1] == "proc"

    def on_open(self, frame, args):
        path, mode, flags = (list(args) + [None, None])[:3]
        if isinstance(path, int) or path is None:
            return
        path = os.path.realpath(os.fsdecode(path))
        write = (isinstance(flags, int) and flags & WRITE_FLAGS) or (isinstance(mode, str) and any(c in mode for c in "wax+"))
        if write and not self.may_write(path):
            if self.asker(frame)[0]:
                self.refuse(f"opened {path} for writing (only the folder of the run's temporary files may be written)")
        elif not write and self.sensitive_read(path) and self.asker(frame)[0]:
            self.refuse(f"opened {path}, a file of the grader or of another process")

    def may_write(self, path: str) -> bool:
        return under(path, [self.folder]) or (under(path, self.writable) and not under(path, self.protected)
                                               and not under(path, self.trusted))

    def on_file_change(self, frame, args):
        for path in args:
            if isinstance(path, (str, bytes, os.PathLike)):
                path = os.path.realpath(os.fsdecode(path))
                if not self.may_write(path) and self.asker(frame)[0]:
                    self.refuse(f"changed or linked {path}, outside the folder of the run's temporary files")

    def spoofed(self, filename) -> bool:
        """A code object's file name that is not the learner's own: the grader's, a library's, importlib's."""
        return isinstance(filename, str) and (filename.startswith("<frozen") or
                                              (not filename.startswith("<") and self.kind(filename) != LEARNER))

    def on_compile(self, frame, args):
        source, filename = (list(args) + [None, None])[:2]
        if not self.spoofed(filename):
            return
        learner, via_import = self.asker(frame)
        if learner and not (via_import and self.same_as_file(source, filename)):
            self.refuse(f"compiled code under the name of another file ({filename})")

    def same_as_file(self, source, filename: str) -> bool:
        try:
            with open(filename, "rb") as f:
                text = f.read()
        except OSError:
            return False
        return source == text or (isinstance(source, str) and source.encode() == text)

    def on_exec(self, frame, args):
        code = args[0] if args else None
        filename = getattr(code, "co_filename", None)
        if self.spoofed(filename):
            learner, via_import = self.asker(frame)
            if learner and not via_import:
                self.refuse(f"ran a code object of another file ({filename})")

    def on_code_new(self, frame, args):
        learner, via_import = self.asker(frame)
        if learner and not via_import:
            self.refuse("made a code object (code.replace or types.CodeType)")

    def on_function_new(self, frame, args):
        code = args[0] if args else None
        if self.spoofed(getattr(code, "co_filename", None)) and self.asker(frame)[0]:
            self.refuse("made a function from another file's code (types.FunctionType)")

    # -- imports -----------------------------------------------------------------------------------

    def forbidden_import(self, name: str, frame) -> bool:
        root = name.split(".")[0]
        if not self.active or root not in FORBIDDEN_IMPORTS:
            return False
        # The grader imports its own modules lazily, sometimes below a learner frame; the reference, never.
        return self.asker(frame)[0] if root == HIDDEN else self.innermost_is_learner(frame)

    def guarded_import(self, name, globals=None, locals=None, fromlist=(), level=0):
        if level == 0 and self.forbidden_import(name, sys._getframe(1)):
            self.refuse(f"imported '{name}'", ForbiddenImport)
        return self._import(name, globals, locals, fromlist, level)

    def find_spec(self, name, path=None, target=None):
        """A meta-path finder that finds nothing: it refuses the forbidden imports that reach it."""
        if self.forbidden_import(name, sys._getframe(1)):
            self.refuse(f"imported '{name}'", ForbiddenImport)
        return None

    def install(self) -> None:
        """Add the audit hook and the import blocker (for the rest of the process; inactive until activate())."""
        # pytest captures fd 2 while checks run: a copy of it made now is not captured
        self._debug = os.fdopen(os.dup(2), "w") if os.environ.get(DEBUG_ENV) else None
        sys.addaudithook(self.hook)
        builtins.__import__ = self.guarded_import
        sys.meta_path.insert(0, self)

    # -- while the learner's code may run ----------------------------------------------------------

    def activate(self) -> None:
        hide_reference()
        self.snapshot = take_snapshot()
        self.active = True

    def take_violations(self) -> list[str]:
        found, self.violations = self.violations, []
        return found

    def tampering(self) -> str | None:
        """What the learner's code replaced since activate(), put back; None when nothing was."""
        changed = []
        for (owner, name), (holder, value) in self.snapshot.items():
            current = current_value(holder, name)
            if current is not value:
                changed.append(f"{owner}.{name}")
                restore(holder, name, value)
        if not changed:
            return None
        more = f" (and {len(changed) - 3} more)" if len(changed) > 3 else ""
        return (f"learnkd: your code replaced {', '.join(changed[:3])}{more} while it was graded. A submission may "
                "not change Python's built-ins, PyTorch, pytest or the grader: every check counts as failed. "
                "Remove the assignment.")


def hide_reference() -> None:
    """Take the reference modules out of sys.modules: the fixtures already hold them."""
    for name in [n for n in sys.modules if n == HIDDEN or n.startswith(HIDDEN + ".")]:
        del sys.modules[name]


def drop_stand_ins(package: str, stems) -> None:
    """Take out the reference modules that stood in for the learner's broken files while they loaded."""
    parent = sys.modules.get(package)
    for stem in stems:
        module = sys.modules.get(f"{package}.{stem}")
        if module is not None and getattr(module, "__name__", "").startswith(HIDDEN):
            del sys.modules[f"{package}.{stem}"]
            if parent is not None and getattr(parent, stem, None) is module:
                delattr(parent, stem)


SYS_LISTS = ("meta_path", "path_hooks")
# What a snapshot keeps: functions, methods and classes (not other callables: a check may keep a model
# in a module global and replace it, which is no tampering).
WATCHED_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, types.MethodDescriptorType,
                 types.WrapperDescriptorType, types.ClassMethodDescriptorType, type, staticmethod, classmethod,
                 property, functools._lru_cache_wrapper)


def watched() -> list[tuple[str, object]]:
    """(label, namespace) of what the checks rely on: a module or class whose functions are snapshotted."""
    names = ["builtins", "math", "json", "hmac", "hashlib", "os", "os.path", "torch", "torch.nn.functional",
             "torch.nn.init", "torch.optim", "torch.autograd", "pytest", "_pytest.runner", "_pytest.outcomes",
             "_pytest.reports", "_pytest.python", "_pytest.fixtures", "pytest_timeout", "pluggy"]
    spaces = [(n, sys.modules[n]) for n in names if n in sys.modules]
    spaces += [(n, m) for n, m in list(sys.modules.items()) if n == "grader" or n.startswith("grader.")]
    torch = sys.modules.get("torch")
    if torch is not None:
        spaces += [("torch.Tensor", torch.Tensor), ("torch._C.TensorBase", torch._C.TensorBase),
                   ("torch.nn.Module", torch.nn.Module)]
    for label, module in list(spaces):  # the grader's own classes too (CheckFailed, Collector, ...)
        if label.startswith("grader"):
            spaces += [(f"{label}.{k}", v) for k, v in vars(module).items()
                       if isinstance(v, type) and getattr(v, "__module__", None) == label]
    return spaces


def take_snapshot() -> dict:
    snapshot = {}
    for label, space in watched():
        for name, value in list(vars(space).items()):
            if isinstance(value, WATCHED_TYPES):
                snapshot[(label, name)] = (space, value)
    for name in SYS_LISTS:
        holder = SysList(name)
        snapshot[("sys", name)] = (holder, holder.value)
    return snapshot


class SysList:
    """sys.meta_path or sys.path_hooks, compared by their contents."""

    def __init__(self, name: str):
        self.name, self.value = name, tuple(getattr(sys, name))


def current_value(holder, name):
    if isinstance(holder, SysList):
        now = tuple(getattr(sys, holder.name))
        return holder.value if now == holder.value else now
    return vars(holder).get(name)


def restore(holder, name, value) -> None:
    try:
        if isinstance(holder, SysList):
            getattr(sys, holder.name)[:] = list(value)
        else:
            setattr(holder, name, value)
    except (AttributeError, TypeError):
        pass  # a built-in type's slot: it cannot be set back, and it is reported all the same

