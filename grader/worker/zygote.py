"""The worker zygote: one sandboxed process that has loaded PyTorch, forking each submission's worker.

`learnkd grade` starts a worker for every submission, `learnkd watch` one for every check, and most of a
worker's start is importing PyTorch (seconds of CPU each time). For a batch or a watch, the grader starts this
zygote once, in a bubblewrap sandbox like a worker's but with no submission in it (``grader.grading.zygote``).
It imports what a worker imports, then waits. It never imports or runs a submission. For each worker a judge asks for, it forks a keeper,
and the keeper puts a worker into sandboxes of its own, nested in the zygote's:

- new mount, PID, network, IPC and UTS namespaces, and, when the grader runs as a user (not root), a user
  namespace (processes count against RLIMIT_NPROC per user namespace);
- every mount the worker could write to is made read-only, and /tmp (with HOME), /submission,
  /scratch, /dev/shm and /dev/pts are fresh and its own;
- a /proc that shows only its own PID namespace;
- the kernel's settings under /proc read-only, and no user namespace it could make;
- no capability left (bounding set, ambient, effective and permitted) and no way to gain one.

Two workers of one zygote therefore share nothing they can write, cannot see or signal each other, the
zygote or the keepers, and reach no network. The worker is the first process of its PID namespace:
when it ends, the kernel ends every process it started. The judge sends it its settings and the
submission's files (plain data, ``wire``), and it runs ``serve.main`` exactly as a worker started on
its own does.

The zygote keeps CAP_SYS_ADMIN, CAP_SETPCAP and CAP_SYS_RESOURCE, inside its own user namespace only, to
make those namespaces. At start (``prepare``), run by root, it forbids user namespaces inside its own (a worker
could mount cgroupfs in one), and it unmounts the read-only covers over parts of /proc, which would stop a nested /proc
from being mounted; each worker's /proc gets them again.

The protocol, on the Unix socket (SOCK_SEQPACKET) the zygote inherits as ``fd``: first the zygote sends
``{"ready": true}`` (or ``{"unavailable": REASON}`` and ends); then one message per worker, ``{}`` with
four descriptors: the worker's stdin, its stdout, its stderr and a reply socket. On the reply socket the
keeper sends ``{"pid": N}`` with a pidfd of the worker (to signal it), then ``{"status": CODE}`` when the
worker ends (CODE as ``Popen.returncode``). When the judge closes its end of the reply socket, the
keeper kills the worker. The zygote ends when its socket closes.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import sys

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER = 0x20000, 0x4000000, 0x8000000, 0x10000000
CLONE_NEWPID, CLONE_NEWNET = 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
MS_MOVE = 8192
STAGE = "/.learnkd-stage"  # an empty folder of the zygote's root, where a worker's fresh /tmp is put together
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 1, 24, 47, 4
MOUNT_FLAGS = {"ro": MS_RDONLY, "nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
               "noatime": 1024, "nodiratime": 2048, "relatime": 1 << 21}  # what a bind remount must keep
MESSAGE_LIMIT = 4096

_libc = ctypes.CDLL(None, use_errno=True)


class SetupError(Exception):
    """A namespace or a mount the worker needs could not be made."""


def _check(result: int, what: str) -> None:
    if result != 0:
        raise SetupError(f"{what}: {os.strerror(ctypes.get_errno())}")


def mount(source: str | None, target: str, kind: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(source and source.encode(), target.encode(), kind and kind.encode(), ctypes.c_ulong(flags),
                       data and data.encode()), f"mounting {target}")


def mounts() -> list[tuple[str, set[str]]]:
    """(mount point, its per-mount options) of every mount this process sees, parents first."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")  # \040 for a space
            found.append((point, set(fields[5].split(","))))
    return found


# ---------------------------------------------------------------------------------------------------
# The zygote


def prepare() -> None:
    """Once, before anything is forked: let nested /proc mounts be made (the read-only binds over parts of /proc
    make the zygote's /proc count as not fully visible; each worker's own /proc gets them again) and give /dev
    a shm folder; forbid user namespaces."""
    covered = {point for point, _ in mounts()}
    for path in Layout.proc_covered:
        if path in covered:
            _check(_libc.umount2(path.encode(), MNT_DETACH), f"unmounting {path}")
    if os.getuid() == 0:
        # Run by root: no user namespace inside the zygote's, for it or any worker (in one, cgroupfs could be
        # mounted and written as root). Root's processes are not counted against RLIMIT_NPROC, so its workers
        # need none of their own. A user's workers each get one (``isolate``), which forbids any further one.
        forbid_user_namespaces()
    os.makedirs("/dev/shm", exist_ok=True)
    os.makedirs(STAGE, exist_ok=True)


def preload(training: bool) -> None:
    """What every worker imports, imported once here (nothing of it runs a tensor operation: OpenMP's threads
    must not exist before a fork). ``training``: also what a worker's first optimizer (torch.optim's constructors
    import it) or torch.export imports, 2.6 s of CPU a worker otherwise; it starts no thread."""
    import torch  # noqa: F401

    if training:
        import torch._dynamo  # noqa: F401
        import torch.export  # noqa: F401

    from . import serve, tasks  # noqa: F401


def serve_forever(control: socket.socket) -> None:
    keepers: set[int] = set()
    while True:
        ready = select.select([control], [], [], 1.0)[0]
        reap(keepers)
        if not ready:
            continue
        try:
            message, fds, _, _ = socket.recv_fds(control, MESSAGE_LIMIT, 4)
        except OSError:
            return
        if not message:
            return  # the grader closed its end
        if len(fds) != 4:
            for fd in fds:
                os.close(fd)
            continue
        try:
            pid = os.fork()
        except OSError:  # no process to be had now: the judge sees its reply socket close, and starts its own
            for fd in fds:
                os.close(fd)
            continue
        if pid == 0:
            code = 1
            try:
                control.close()
                code = keep(*fds)
            finally:
                os._exit(code)
        keepers.add(pid)
        for fd in fds:
            os.close(fd)


def reap(keepers: set[int]) -> None:
    for pid in list(keepers):
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done = pid
        if done:
            keepers.discard(pid)


# ---------------------------------------------------------------------------------------------------
# The keeper: makes the worker's namespaces, reports on it, kills it when the judge goes


def keep(stdin: int, stdout: int, stderr: int, reply_fd: int) -> int:
    reply = socket.socket(fileno=reply_fd)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        isolate()
    except (SetupError, OSError) as err:
        reply.send(json.dumps({"error": str(err)}).encode())
        return 1
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            reply.close()
            code = become_worker(stdin, stdout, stderr)
        except BaseException as err:  # before any learner code: the reason goes to the judge's log
            try:
                os.write(stderr, f"the worker could not start: {err}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code if isinstance(code, int) else 1)
    for fd in (stdin, stdout, stderr):
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    socket.send_fds(reply, [json.dumps({"pid": pid}).encode()], [pidfd])
    while True:
        ready = select.select([reply, pidfd], [], [])[0]
        if pidfd in ready:
            break
        if reply in ready:
            try:
                data = reply.recv(MESSAGE_LIMIT)
            except OSError:
                data = b""
            if not data:  # the judge is gone, or stopped this worker
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                break
    _, status = os.waitpid(pid, 0)
    try:
        reply.send(json.dumps({"status": os.waitstatus_to_exitcode(status)}).encode())
    except OSError:
        pass
    return 0


class Layout:
    """The sandbox's folders, as the grader's ``sandbox`` module names them (the zygote's start argument)."""
    own: tuple[str, ...] = ()  # fresh and in memory for every worker (/dev/shm is added)
    home = ""  # made inside the fresh /tmp
    workdir = ""  # where the worker starts: the submission's folder
    tmpfs_bytes = 0
    proc_covered: tuple[str, ...] = ()  # bound read-only over themselves in every worker's /proc


def forbid_user_namespaces() -> None:
    """No user namespace can be made inside this process's own (nor inside any it makes)."""
    with open("/proc/sys/user/max_user_namespaces", "w") as f:
        f.write("0")


def own_user_namespace() -> bool:
    """Whether each worker gets a user namespace of its own: run by a user, not root. Processes count against
    RLIMIT_NPROC per user namespace and user, so in one shared namespace a worker that starts hundreds of
    processes would leave none for the others."""
    return os.getuid() != 0


def isolate() -> None:
    """In the keeper: new namespaces (the PID one holds the keeper's next child), every writable mount made
    read-only, the worker's own folders fresh."""
    uid, gid = os.getuid(), os.getgid()
    user = CLONE_NEWUSER if own_user_namespace() else 0
    _check(_libc.unshare(user | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS), "unshare")
    if user:  # the same user inside, and no other
        for path, text in (("uid_map", f"{uid} {uid} 1"), ("setgroups", "deny"), ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{path}", "w") as f:
                f.write(text)
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    for point, options in mounts():
        if "rw" not in options or point == "/proc" or point.startswith(("/proc/", "/dev/pts")):
            continue
        if point != "/" and not os.path.isdir(point):
            continue  # a device node bound from the host: writing to it is not writing to a folder
        flags = MS_REMOUNT | MS_BIND | MS_RDONLY
        for name, flag in MOUNT_FLAGS.items():
            flags |= flag if name in options else 0
        mount(None, point, None, flags)
    for folder in (*Layout.own, "/dev/shm"):
        if os.path.isdir(folder):
            fresh(folder)
    os.makedirs(Layout.home, exist_ok=True)


def fresh(folder: str) -> None:
    """An empty tmpfs of the worker's own at ``folder``, with the mounts below it kept where they are (a Python
    environment under /tmp, as a CI's is): made at STAGE with them bound in, then moved into place."""
    below = [point for point, _ in mounts() if point.startswith(folder.rstrip("/") + "/")]
    top = [point for point in below if not any(point.startswith(other + "/") for other in below)]
    options = f"size={Layout.tmpfs_bytes},mode=1777"
    if not top:
        mount("learnkd", folder, "tmpfs", MS_NOSUID | MS_NODEV, options)
        return
    mount("learnkd", STAGE, "tmpfs", MS_NOSUID | MS_NODEV, options)
    for point in top:
        inside = STAGE + point[len(folder.rstrip("/")):]
        os.makedirs(inside, exist_ok=True)
        mount(point, inside, None, MS_BIND | MS_REC)  # read-only as they were
    mount(STAGE, folder, None, MS_MOVE)


def become_worker(stdin: int, stdout: int, stderr: int) -> int:
    """In the worker (the first process of its PID namespace): its own /proc and terminals, no capability,
    its descriptors in place; then the worker's main loop."""
    own_proc()
    if os.path.isdir("/dev/pts"):
        mount("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=620")
    os.chdir(Layout.workdir)
    os.setsid()
    _check(_libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0), "prctl")
    drop_capabilities()
    for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2)):
        os.dup2(fd, target)
    highest = os.sysconf("SC_OPEN_MAX")
    os.closerange(3, highest if highest > 0 else 65536)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    from . import serve

    serve.main()
    return 0


def own_proc() -> None:
    """A /proc of the worker's PID namespace, with the kernel's settings in it read-only (as in a worker's own
    sandbox)."""
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    if own_user_namespace():
        forbid_user_namespaces()  # in the worker's own, while /proc/sys is writable
    for path in Layout.proc_covered:
        if os.path.exists(path):
            mount(path, path, None, MS_BIND)
            mount(None, path, None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def drop_capabilities() -> None:
    """Every capability, for good: the bounding set, the ambient set, then effective, permitted and inheritable."""
    last = int(open("/proc/sys/kernel/cap_last_cap").read())
    for cap in range(last + 1):
        _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), "dropping a capability")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    header, data = Header(0x20080522, 0), (Data * 2)()  # _LINUX_CAPABILITY_VERSION_3: two 32-bit words
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")
    status = dict(line.split(":", 1) for line in open("/proc/self/status") if ":" in line)
    if any(int(status.get(f"Cap{kind}", "1").strip(), 16) for kind in ("Eff", "Prm", "Inh", "Bnd", "Amb")) \
            or status.get("NoNewPrivs", "0").strip() != "1":
        raise SetupError("a capability is left, or new privileges could be gained")


# ---------------------------------------------------------------------------------------------------


def probe() -> None:
    """Make one worker's namespaces and end: the judge falls back to a sandbox per worker if this fails."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(read)
            isolate()
            inner = os.fork()
            if inner == 0:
                try:
                    own_proc()
                    drop_capabilities()
                    os._exit(0)
                except BaseException as err:
                    os.write(write, str(err).encode()[:500])
                    os._exit(1)
            code = os.waitstatus_to_exitcode(os.waitpid(inner, 0)[1])
        except BaseException as err:
            os.write(write, str(err).encode()[:500])
        finally:
            os._exit(code)
    os.close(write)
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    reason = os.read(read, 1000).decode(errors="replace")
    os.close(read)
    if code != 0:
        raise SetupError(reason or f"the probe ended with exit code {code}")


def main(start: str) -> None:
    """``start``: JSON of the control socket's descriptor and the sandbox's folders (``Layout``)."""
    settings = json.loads(start)
    Layout.own, Layout.home = tuple(settings["own"]), settings["home"]
    Layout.workdir, Layout.tmpfs_bytes = settings["workdir"], int(settings["tmpfs_bytes"])
    Layout.proc_covered = tuple(settings["proc_covered"])
    control = socket.socket(fileno=int(settings["fd"]))
    null = os.open(os.devnull, os.O_RDWR)
    for target in (0, 1):
        os.dup2(null, target)
    os.close(null)
    try:
        prepare()
        probe()
        preload(bool(settings.get("training", True)))
    except (SetupError, OSError, ImportError) as err:
        control.send(json.dumps({"unavailable": str(err)[:1000]}).encode())
        return
    control.send(json.dumps({"ready": True}).encode())
    serve_forever(control)


if __name__ == "__main__":
    main(sys.argv[1])
