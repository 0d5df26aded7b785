"""The OS-level sandbox the worker runs in: Linux namespaces made by bubblewrap, else util-linux unshare.

Inside it the worker sees a read-only system and Python environment, the worker's own code (as
``/learnkd/learnkd_worker``) and the submission's private copy (read-only, copied by the worker into
``/submission`` before any learner code runs); ``/submission``, ``/scratch``, HOME and /tmp are its own,
empty, in memory and bounded (``TMPFS_BYTES`` each), so a submission can fill no disk. It has no network (a new network
namespace holds only a loopback of its own), its own PID namespace (it can signal no process
outside and leaves none behind: when the sandbox's first process ends, the kernel ends the rest),
and it cannot see the grader, the reference, other submissions, the output folder, the teacher
cache or the MNIST test set. The kernel's settings under /proc are read-only and no user namespace can be
made inside (in one, a sandbox run by root could mount the machine's cgroups and write them). The worker
lowers its own resource limits before any learner code runs.

``kind()`` says which tool is used here: "bwrap", "unshare", or "none" (no isolation: the judge and
worker split still holds, but the learner's code sees what its user sees).
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

from grader.lab.cores import wait_asleep

WORKER_DIR = Path(__file__).resolve().parent.parent / "worker"  # mounted alone, as learnkd_worker
PROJECT = WORKER_DIR.parent.parent  # the checkout (or site-packages) holding grader/ and solutions/
MOUNT = "/learnkd"
SUBMISSION, SCRATCH, HOME = "/submission", "/scratch", "/tmp/home"
HANDED_IN = f"{MOUNT}/handed-in"  # the submission's copy, read-only; the worker copies it into /submission
# /submission, /scratch and /tmp are the sandbox's own, in memory, each bounded: a submission cannot fill a disk.
TMPFS_BYTES = 256 * 2**20
NONE, BWRAP, UNSHARE = "none", "bwrap", "unshare"
# Kernel settings under /proc that check only the writer's uid: a sandbox run by root (whose uid 0 is the machine's)
# could write them (kernel.core_pattern runs a program as root). Each is bound read-only over itself.
PROC_COVERED = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus")
NO_ISOLATION = ("no sandbox can be made on this machine (learnkd uses bubblewrap, or util-linux unshare, on Linux), "
                "so your code runs as you, without isolation; the checks still run apart from it and decide.")


def bootstrap(package_parent: str) -> str:
    return (f"import sys; sys.path.insert(0, {package_parent!r}); "
            "from learnkd_worker.serve import main; main()")


def python_paths() -> list[Path]:
    """The folders the worker's Python needs, read-only: the interpreter's prefixes and package folders."""
    found = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix)}
    found |= {Path(p) for p in site.getsitepackages()}
    user = site.getusersitepackages()
    if user and Path(user).is_dir() and user in sys.path:
        found.add(Path(user))
    executable = Path(sys.executable)
    found.add(executable.parent)
    if executable.is_symlink():
        found.add(executable.resolve().parent.parent)
    paths = []
    for path in sorted(found, key=lambda p: len(p.parts)):
        if path.is_dir() and not any(path == p or p in path.parents for p in paths) and path != Path("/"):
            paths.append(path)
    return paths


def hidden_paths() -> list[Path]:
    """Installed copies of the grader and the reference that a read-only mount would otherwise show."""
    hidden = []
    for name in ("grader", "solutions", "exercises"):
        for base in [PROJECT, *map(Path, site.getsitepackages())]:
            folder = base / name
            if folder.is_dir():
                hidden.append(folder.resolve())
    return sorted(set(hidden))


def system_binds() -> list[str]:
    args = []
    for path in ("/usr", "/etc", "/opt"):
        if Path(path).is_dir():
            args += ["--ro-bind", path, path]
    for link in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        p = Path(link)
        if p.is_symlink():
            args += ["--symlink", os.readlink(link), link]
        elif p.is_dir():
            args += ["--ro-bind", link, link]
    args += ["--ro-bind-try", "/sys/devices/system/cpu", "/sys/devices/system/cpu"]
    return args


def passed_environment() -> dict[str, str]:
    """What the worker's environment keeps of the grader's: how many threads, how they wait for work (asleep
    unless the user said otherwise: ``grader.lab.cores.wait_asleep``), which GPUs."""
    kept = {name: os.environ[name] for name in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "MKL_NUM_THREADS",
                                                 "CUDA_VISIBLE_DEVICES") if name in os.environ}
    return wait_asleep(kept)


def bwrap_command(command: list[str], submission: Path | None, scratch: Path | None = None, device: str = "cpu",
                  zygote: bool = False) -> list[str]:
    """``zygote``: the sandbox of the worker zygote, which holds no submission and keeps the capabilities it needs,
    in its own user namespace, to make each worker's namespaces; it covers /proc and forbids user namespaces
    itself (grader/worker/zygote.py), since bubblewrap's way of doing both would stop it mounting a worker's /proc."""
    args = ["bwrap", "--unshare-all", "--unshare-user", "--cap-drop", "ALL", "--die-with-parent", "--new-session",
            "--proc", "/proc", "--dev", "/dev"]
    if zygote:
        args += ["--cap-add", "CAP_SYS_ADMIN", "--cap-add", "CAP_SETPCAP", "--cap-add", "CAP_SYS_RESOURCE"]
    else:
        args += ["--disable-userns"]  # a user namespace inside could mount cgroupfs, which root could then write
        for path in PROC_COVERED:  # read-only: run by root, the sandbox's root is the machine's root for these files
            args += ["--ro-bind-try", path, path]
    args += system_binds()
    args += ["--size", str(TMPFS_BYTES), "--tmpfs", "/tmp", "--dir", HOME]
    for path in python_paths():
        args += ["--ro-bind", str(path), str(path)]
    for path in hidden_paths():  # a non-editable install puts them inside a mounted site-packages
        if any(p == path or p in path.parents for p in python_paths()):
            args += ["--tmpfs", str(path)]
    args += ["--ro-bind", str(WORKER_DIR), f"{MOUNT}/learnkd_worker"]
    if not zygote:
        args += ["--ro-bind", str(submission), HANDED_IN]
    args += ["--size", str(TMPFS_BYTES), "--tmpfs", SUBMISSION, "--size", str(TMPFS_BYTES), "--tmpfs", SCRATCH,
             "--chdir", SUBMISSION]
    if device == "cuda":
        for dev in sorted(Path("/dev").glob("nvidia*")):
            args += ["--dev-bind", str(dev), str(dev)]
    args += ["--clearenv", "--setenv", "HOME", HOME, "--setenv", "TMPDIR", "/tmp", "--setenv", "PATH", "/usr/bin:/bin",
             "--setenv", "MPLCONFIGDIR", SCRATCH, "--setenv", "PYTHONDONTWRITEBYTECODE", "1", "--setenv", "LANG", "C.UTF-8"]
    for name, value in passed_environment().items():
        args += ["--setenv", name, value]
    return [*args, "--", *command]


def unshare_command(command: list[str], submission: Path, scratch: Path | None = None, device: str = "cpu") -> list[str]:
    """util-linux unshare: new user, mount, PID, network and IPC namespaces, in which a shell builds a new
    root of read-only binds (the same view as bwrap's), chroots into it and drops every capability."""
    root = "/mnt/.learnkd-root"
    lines = ["set -e", f"mount -t tmpfs -o size={TMPFS_BYTES} learnkd /mnt", f"mkdir -p {root}"]

    def bind(source: str, target: str, readonly: bool = True) -> None:
        lines.append(f"mkdir -p {root}{target} && mount --rbind {_q(source)} {root}{target}")
        if readonly:
            lines.append(f"mount -o remount,ro,bind {root}{target}")

    # /tmp first: a Python environment that lives under /tmp (a CI's venv) is bound on top of it
    lines += [f"mkdir -p {root}/proc {root}/dev {root}/tmp", f"mount -t proc proc {root}/proc",
              # no user namespace inside this one (bwrap's --disable-userns): a nested one could mount cgroupfs
              f"echo 0 > {root}/proc/sys/user/max_user_namespaces"]
    for path in PROC_COVERED:
        lines.append(f"if [ -e {root}{path} ]; then mount --bind {root}{path} {root}{path} && "
                     f"mount -o remount,ro,bind {root}{path}; fi")
    lines += [f"mount -t tmpfs -o size={TMPFS_BYTES} none {root}/tmp", f"mkdir -p {root}{HOME}",
              f"mount -t tmpfs -o size=64m none {root}/dev", f"mkdir -p {root}/dev/shm"]
    for path in ("/usr", "/etc", "/opt"):
        if Path(path).is_dir():
            bind(path, path)
    for link in ("/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        p = Path(link)
        if p.is_symlink():
            lines.append(f"ln -s {_q(os.readlink(link))} {root}{link}")
        elif p.is_dir():
            bind(link, link)
    if Path("/sys/devices/system/cpu").is_dir():
        bind("/sys/devices/system/cpu", "/sys/devices/system/cpu")
    for path in python_paths():
        bind(str(path), str(path))
    for path in hidden_paths():
        if any(p == path or p in path.parents for p in python_paths()):
            lines.append(f"mount -t tmpfs none {root}{_q(str(path))}")
    bind(str(WORKER_DIR), f"{MOUNT}/learnkd_worker")
    bind(str(submission), HANDED_IN)
    for folder in (SUBMISSION, SCRATCH):
        lines.append(f"mkdir -p {root}{folder} && mount -t tmpfs -o size={TMPFS_BYTES} none {root}{folder}")
    devices = ["null", "zero", "random", "urandom"]
    if device == "cuda":
        devices += [d.name for d in sorted(Path("/dev").glob("nvidia*"))]
    for dev in devices:
        lines.append(f"touch {root}/dev/{dev} && mount --bind /dev/{dev} {root}/dev/{dev}")
    env = ["/usr/bin/env", "-i", f"HOME={HOME}", "TMPDIR=/tmp", "PATH=/usr/bin:/bin", f"MPLCONFIGDIR={SCRATCH}",
           "PYTHONDONTWRITEBYTECODE=1", "LANG=C.UTF-8"]
    env += [f"{name}={value}" for name, value in passed_environment().items()]
    # no capability is left: the binds stay read-only and the chroot cannot be left
    lines.append(f'cd {root}{SUBMISSION} && exec chroot {root} /usr/bin/setpriv --bounding-set=-all '
                 f'--inh-caps=-all --no-new-privs -- /bin/sh -c \'cd {SUBMISSION} && exec "$@"\' sandbox '
                 + " ".join(_q(a) for a in env) + ' "$@"')
    return ["unshare", "--user", "--map-root-user", "--mount", "--pid", "--fork", "--net", "--ipc", "--kill-child",
            "/bin/sh", "-c", "\n".join(lines), "sandbox", *command]


def _q(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


@functools.lru_cache(maxsize=None)
def kind() -> str:
    """The tool that works on this machine: "bwrap", "unshare" or "none" (tried once, with `true`)."""
    if os.environ.get("LEARNKD_SANDBOX") in (NONE, BWRAP, UNSHARE):
        return os.environ["LEARNKD_SANDBOX"]
    if not sys.platform.startswith("linux"):
        return NONE
    probe = Path("/")  # any folder will do for the probe's binds
    if shutil.which("bwrap") and _works(bwrap_command(["true"], probe, probe)):
        return BWRAP
    if shutil.which("unshare") and _works(unshare_command(["true"], probe, probe)):
        return UNSHARE
    return NONE


def _works(command: list[str]) -> bool:
    try:
        return subprocess.run(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, timeout=30).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def zygote_command(fd: int, training: bool = True) -> list[str]:
    """The command line that starts the worker zygote (``grader.worker.zygote``) in a bubblewrap sandbox of its
    own, on the control socket ``fd``: a worker's view, without a submission. ``training``: its workers will train
    or export models (``grader.worker.zygote.preload``)."""
    start = json.dumps({"fd": fd, "own": ["/tmp", SUBMISSION, SCRATCH], "home": HOME, "workdir": SUBMISSION,
                        "tmpfs_bytes": TMPFS_BYTES, "proc_covered": PROC_COVERED, "training": training})
    code = (f"import sys; sys.path.insert(0, {MOUNT!r}); "
            f"from learnkd_worker.zygote import main; main({start!r})")
    return bwrap_command([sys.executable, "-I", "-c", code], None, zygote=True)


def worker_command(submission: Path, scratch: Path | None, sandbox: str, device: str = "cpu") -> tuple[list[str], Path]:
    """The command line that starts the worker, and the folder it sees the submission in."""
    python = [sys.executable, "-I", "-c"]
    if sandbox == BWRAP:
        return bwrap_command([*python, bootstrap(MOUNT)], submission, scratch, device), Path(SUBMISSION)
    if sandbox == UNSHARE:
        return unshare_command([*python, bootstrap(MOUNT)], submission, scratch, device), Path(SUBMISSION)
    # no isolation: the worker package is imported from where it lies, under its sandbox name
    link_parent = scratch / ".worker"
    link_parent.mkdir(exist_ok=True)
    link = link_parent / "learnkd_worker"
    if not link.exists():
        link.symlink_to(WORKER_DIR)
    return [*python, bootstrap(str(link_parent))], submission
