"""Hostile submissions (tests/adversarial/) graded as `learnkd grade` grades a class, beside honest classmates.

Each file in tests/adversarial/ is a whole exercise file written as a hostile student would write it: it
replaces loss.py (or, with the marker line ``topic: evaluate``, evaluate.py) in a copy of the reference.
A folder there is a whole submission, graded as it is. The first line of the docstring says the attack;
marker lines say what else the grader must answer:

    topic: loss, evaluate   the topics the attack is scored on (default: loss)
    says: TEXT              words that a failed check's message (or the run's note) must contain

Every attack is graded in one batch (``classroom.grade_batch``, `learnkd grade`'s function, two at a time)
with two victims (honest copies of solutions/) and two stubs (the reference with one topic's file put back
to its exercise stub), under a temporary HOME holding a fake SSH key, .bashrc and teacher cache, with a
listener on 127.0.0.1 started here. Each attack earns at most what the stub earns for its topic; the
victims earn what they earn graded alone; the gradebook, the fake HOME and grader/course/points.toml are left as
they were; no byte reaches the listener; and no process of the batch is left when grading returns.

The attacks run only inside a sandbox (bubblewrap or util-linux unshare): where none can be made these
tests skip, saying so, as `learnkd grade` refuses to run there without --no-sandbox.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest

from grader.classroom.batch import GRADEBOOK, JUNIT, RESULTS, Options, grade_batch
from grader.grading import sandbox
from grader.course.points import POINTS_FILE
from grader.grading.results import by_topic
from grader.course.stubs import SOLUTIONS

ROOT = Path(__file__).resolve().parent.parent
EXERCISES = ROOT / "exercises"
ADVERSARIAL = Path(__file__).resolve().parent / "adversarial"
ENTRIES = sorted([*ADVERSARIAL.glob("*.py"), *(p for p in ADVERSARIAL.iterdir() if p.is_dir() and p.name[0] not in "_.")])
TOPICS = ["loss", "evaluate"]
TOPIC_FILES = {"loss": "loss.py", "evaluate": "evaluate.py"}
VICTIMS = ("victim_alice", "victim_bob")
STUBS = {topic: f"stub_{topic}" for topic in TOPICS}
# Wall-clock limit per submission: an honest one takes ~20 s with two graded at once on 2 busy cores.
TIMEOUT_S = 60
# A request to the learner's code: an honest one takes well under a second here; a hanging attack waits this long.
CHECK_TIMEOUT_S = 5
AFTERMATH_S = 3  # how long after grading a daemon that outlived it is given to strike
# The attacks the issue lists, each a file (or folder) of tests/adversarial/.
CATALOGUE = {
    "status_overwrite": "the STATUS table overwritten through sys.modules['__main__']",
    "guard_off_importlib": "the old guard switched off, then the reference imported with importlib",
    "gc_channel_writer": "gc.get_objects() rewriting the results channel's Writer",
    "exec_reference": "code made with exec() calling the reference",
    "patch_tolerances": "grader.grading.checking.difference's defaults and the tolerance constants patched",
    "torch_function_mode": "a TorchFunctionMode making torch.allclose / torch.equal return True",
    "tensor_subclass": "a Tensor subclass with __torch_function__",
    "evaluate_float_subclass": "evaluate returning a float subclass whose __sub__ gives 0",
    "evaluate_nan": "evaluate returning NaN",
    "symlinks_to_solutions": "a folder whose files are symlinks to solutions/",
    "steal_ssh_key": "~/.ssh/id_rsa read and sent to a listener on 127.0.0.1",
    "write_bashrc": "~/.bashrc written",
    "classmate_exec": "the disk walked to a classmate's submission, which is exec'd",
    "overwrite_classmates": "classmates' graded copies overwritten",
    "kill_siblings": "SIGKILL of the sibling grading processes",
    "daemon_gradebook": "a double-forked daemon rewriting gradebook.csv after grade exits",
    "append_points": "grader/course/points.toml appended to",
    "cache_poison": "the teacher cache poisoned",
    "endless_loop": "signal.signal(SIGALRM, SIG_IGN) and an endless loop",
    "atexit_endless": "an atexit endless loop",
    "pytest_skip": "pytest.skip()", "pytest_exit": "pytest.exit()", "sys_exit": "sys.exit()",
    "os_exit": "os._exit()", "frame_walk": "the call stack walked", "traceback_frame": "a traceback's frames",
    "gc_search": "gc searched for the reference", "ctypes_ptrace": "ctypes and ptrace on the grader",
    "fork_children": "processes forked to be left behind", "huge_memory": "a memory bomb",
    "garbage_output": "an output bomb", "fake_results_file": "forged results on inherited descriptors",
    "dunder_import_solutions": "__import__ of the reference", "importlib_solutions": "importlib of the reference",
    "sys_modules_solutions": "sys.modules searched for the reference", "read_reference_source": "the reference read from disk",
    "signal_parent": "the grader signalled", "monkeypatch_allclose": "torch.allclose replaced",
}

needs_sandbox = pytest.mark.skipif(
    sandbox.kind() == sandbox.NONE,
    reason="no sandbox can be made here (bubblewrap, or util-linux unshare, with user namespaces): hostile "
           "submissions are graded only inside one, as `learnkd grade` refuses to run without one")


def about(entry: Path) -> str:
    return (entry / "ABOUT.txt").read_text() if entry.is_dir() else entry.read_text()


def marker(entry: Path, name: str) -> str | None:
    found = re.search(rf"^{name}:\s*(.+?)\s*$", about(entry), re.M)
    return found and found.group(1)


def topics_of(entry: Path) -> list[str]:
    return [t.strip() for t in (marker(entry, "topic") or "loss").split(",")]


def test_every_attack_of_the_issue_is_a_submission():
    names = {e.stem if e.is_file() else e.name for e in ENTRIES}
    assert set(CATALOGUE) <= names, f"missing from tests/adversarial/: {sorted(set(CATALOGUE) - names)}"
    for entry in ENTRIES:
        assert about(entry).lstrip().startswith(('"""', "A ")), f"{entry.name}: say what the attack is first"
        assert set(topics_of(entry)) <= set(TOPICS), f"{entry.name}: topics {topics_of(entry)}"


# ---------------------------------------------------------------------------------------------------
# The arena: a fake HOME, a listener, and a record of the processes


class Listener:
    """TCP and UDP on 127.0.0.1 at the first free port of ``ports``; keeps every byte it receives. It stops
    when told to, or by itself after ``lifetime`` seconds."""

    def __init__(self, ports: tuple[int, ...], lifetime: float = 1800.0):
        self.received, self.connections = bytearray(), 0
        self._stop, self._deadline = threading.Event(), time.monotonic() + lifetime
        for port in ports:
            tcp, udp = socket.socket(socket.AF_INET, socket.SOCK_STREAM), socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
            except OSError:
                tcp.close()
                udp.close()
                continue
            tcp.listen(16)
            self.port, self.tcp, self.udp = port, tcp, udp
            break
        else:
            raise RuntimeError(f"none of the ports {ports} is free on 127.0.0.1")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            while not self._stop.is_set() and time.monotonic() < self._deadline:
                ready, _, _ = select.select([self.tcp, self.udp], [], [], 0.2)
                if self.udp in ready:
                    self.received += self.udp.recvfrom(65536)[0]
                if self.tcp in ready:
                    conn, _ = self.tcp.accept()
                    self.connections += 1
                    with conn:
                        conn.settimeout(1.0)
                        try:
                            while len(self.received) < 2**20 and (data := conn.recv(65536)):
                                self.received += data
                        except OSError:
                            pass
        finally:
            self.tcp.close()
            self.udp.close()

    def stop(self) -> None:
        self._stop.set()
        self.thread.join(timeout=5)


def listener_ports() -> tuple[int, ...]:
    """The ports steal_ssh_key.py sends to (its PORTS line): one place says them."""
    found = re.search(r"^PORTS = (.+)$", (ADVERSARIAL / "steal_ssh_key.py").read_text(), re.M)
    return tuple(ast.literal_eval(found.group(1)))


def make_home(home: Path) -> Path:
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nnot a real key: learnkd's tests\n"
                                          "-----END OPENSSH PRIVATE KEY-----\n")
    (home / ".ssh" / "id_rsa").chmod(0o600)
    (home / ".bashrc").write_text("# the fake HOME of tests/test_adversarial.py\n")
    teachers = home / ".cache" / "learnkd" / "teachers"
    teachers.mkdir(parents=True)
    (teachers / "teacher-0123456789abcdef01234567.pt").write_bytes(b"a cached teacher")
    return home


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder under ``folder`` (hidden ones too): its content's digest, or 'dir'."""
    found = {}
    for path in sorted(folder.rglob("*")):
        key = path.relative_to(folder).as_posix()
        found[key] = "dir" if path.is_dir() and not path.is_symlink() else hashlib.sha256(
            path.read_bytes() if path.is_file() else os.readlink(path).encode()).hexdigest()
    return found


def boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0


def processes() -> dict[int, dict]:
    """pid -> {"ppid", "cmdline", "started"} of every process this user can see."""
    ticks, booted, found = os.sysconf("SC_CLK_TCK"), boot_time(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ")
        except (OSError, IndexError):
            continue
        found[int(entry.name)] = {"ppid": int(fields[1]), "cmdline": cmdline, "started": booted + int(fields[19]) / ticks}
    return found


def batch_processes(root: Path, since: float) -> tuple[list[int], list[int]]:
    """The processes of the batch still alive: (those that descend from this test's process or mention ``root``
    or descend from one that does, which this test started; orphaned workers started since ``since``, whose
    origin cannot be proven)."""
    table, mark, me = processes(), str(root).encode(), os.getpid()
    ours, orphans = [], []
    for pid, proc in table.items():
        if pid == me:
            continue
        chain, current, seen = [], pid, set()
        while current in table and current not in seen and current > 1:
            seen.add(current)
            chain.append(table[current]["cmdline"])
            current = table[current]["ppid"]
        if me in seen or any(mark in cmdline for cmdline in chain):
            ours.append(pid)
        elif (b"learnkd_worker" in proc["cmdline"] and proc["started"] >= since
              and not any(m in c for c in chain for m in (b"grader.grading.judge", b"bwrap", b"unshare"))):
            orphans.append(pid)
    return ours, orphans


def end(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


def lay_out(entry: Path, into: Path) -> Path:
    """The submission of ``entry``: the reference with the attacked files replaced, or the folder as it is."""
    if entry.is_dir():
        return entry
    folder = into / entry.stem
    shutil.copytree(SOLUTIONS, folder, ignore=shutil.ignore_patterns("__pycache__"))
    for topic in topics_of(entry):
        shutil.copy(entry, folder / TOPIC_FILES[topic])
    return folder


def test_the_instruments_see_what_they_watch(tmp_path):
    """The listener hears a byte, a snapshot sees a change, batch_processes finds a process of the folder."""
    listener = Listener(listener_ports(), lifetime=30)
    try:
        with socket.create_connection(("127.0.0.1", listener.port), timeout=5) as conn:
            conn.sendall(b"x")
        deadline = time.monotonic() + 5
        while not listener.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        listener.stop()
    assert listener.received == b"x" and listener.connections == 1
    home = make_home(tmp_path / "home")
    before = snapshot(home)
    with open(home / ".bashrc", "a") as f:
        f.write("more")
    assert snapshot(home) != before
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path)])
    try:
        assert proc.pid in batch_processes(tmp_path, time.time() - 5)[0]
    finally:
        end([proc.pid])
        proc.wait()


@pytest.mark.parametrize("name", ["steal_ssh_key", "write_bashrc", pytest.param("cache_poison", marks=pytest.mark.slow)])
def test_the_harmful_attacks_do_harm_where_nothing_isolates_them(name, tmp_path):
    """Run outside any sandbox, against a fake HOME, the attack does what it says: the tests above are not vacuous.
    (The attacks that signal or write outside HOME are not run here: they would reach other processes.)"""
    home = make_home(tmp_path / "home")
    (home / "work").mkdir()
    env = {"HOME": str(home), "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONDONTWRITEBYTECODE": "1"}
    # sh is the attack's parent, so the HOME it reads from its parent's environment is the fake one too
    script = f'{sys.executable} -I -c "import runpy; runpy.run_path({str(ADVERSARIAL / (name + ".py"))!r})"; exit 0'
    before = snapshot(home)
    listener = Listener(listener_ports(), lifetime=60)
    try:
        subprocess.run(["sh", "-c", script], env=env, cwd=home / "work", timeout=120, capture_output=True)
        time.sleep(0.5)
    finally:
        listener.stop()
    if name == "steal_ssh_key":
        assert b"id_rsa" in listener.received
    else:
        assert snapshot(home) != before


def options(jobs: int) -> Options:
    return Options(TOPICS, jobs=jobs, timeout=TIMEOUT_S, check_timeout=CHECK_TIMEOUT_S)


@pytest.fixture(scope="module")
def arena(tmp_path_factory):
    root = tmp_path_factory.mktemp("arena")
    home, tmp, subs = make_home(root / "home"), root / "tmp", root / "submissions"
    tmp.mkdir()
    subs.mkdir()
    for name in VICTIMS:
        shutil.copytree(SOLUTIONS, subs / name, ignore=shutil.ignore_patterns("__pycache__"))
    for topic, name in STUBS.items():
        shutil.copytree(SOLUTIONS, subs / name, ignore=shutil.ignore_patterns("__pycache__"))
        shutil.copy(EXERCISES / TOPIC_FILES[topic], subs / name / TOPIC_FILES[topic])
    attacks = {(e.stem if e.is_file() else e.name): lay_out(e, subs) for e in ENTRIES}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HOME", str(home))
        mp.setenv("TMPDIR", str(tmp))
        mp.setattr(tempfile, "tempdir", str(tmp))  # every temporary folder of the batch, judges' too, is under root
        for name in ("XDG_CACHE_HOME", "LEARNKD_POINTS", "LEARNKD_WORKER_USER"):
            mp.delenv(name, raising=False)
        listener = Listener(listener_ports())
        try:
            home_before, points_before = snapshot(home), POINTS_FILE.read_bytes()
            victims_before = {v: snapshot(subs / v) for v in VICTIMS}
            alone = {g.handin.name: g for g in grade_batch([subs / v for v in VICTIMS], root / "alone", options(2))}
            started = time.time() - 1
            out = root / "out"
            batch = grade_batch([*(subs / v for v in VICTIMS), *(subs / s for s in STUBS.values()), *attacks.values()],
                                out, options(2))
            left_at_once = batch_processes(root, started)
            outputs = {name: (out / name).read_bytes() for name in (GRADEBOOK, JUNIT)}
            time.sleep(AFTERMATH_S)
            left_after = batch_processes(root, started)
        finally:
            listener.stop()
            mine = batch_processes(root, time.time())[0]
            end(mine)  # only processes this test started (they mention its folder, or descend from one that does)
    graded = {g.handin.name: g for g in batch}  # every name here is already a safe folder name: kept as it is
    return SimpleNamespace(root=root, out=out, home=home, graded=graded, alone=alone, outputs=outputs,
                           attacks={a: graded[p.name] for a, p in attacks.items()},
                           home_before=home_before, home_after=snapshot(home), points_before=points_before,
                           points_after=POINTS_FILE.read_bytes(), victims_before=victims_before,
                           victims_after={v: snapshot(subs / v) for v in VICTIMS}, listener=listener,
                           left_at_once=left_at_once, left_after=left_after)


def earned(graded, topic: str) -> float:
    return graded.scores([topic])[topic][0]


# ---------------------------------------------------------------------------------------------------
# What each attack earns


@pytest.mark.slow
@needs_sandbox
@pytest.mark.parametrize("entry", ENTRIES, ids=[e.stem if e.is_file() else e.name for e in ENTRIES])
def test_attack_earns_no_more_than_the_stub(entry, arena):
    g = arena.attacks[entry.stem if entry.is_file() else entry.name]
    for topic in topics_of(entry):
        [result] = by_topic(g.results, [topic])
        assert result.checks, f"no {topic} check was reported"
        stub = earned(arena.graded[STUBS[topic]], topic)
        assert earned(g, topic) <= stub, (f"{entry.name} earned {earned(g, topic):g} on {topic} (the stub: {stub:g}) "
                                          f"with {[c.name for c in result.checks if c.passed]}")
    says = marker(entry, "says")
    if says:
        texts = [c.message for c in g.results if not c.passed] + [g.crash or ""]
        assert any(says in text for text in texts), f"no message says {says!r}: {texts[:3]}"


@pytest.mark.slow
@needs_sandbox
def test_the_stubs_earn_nothing_on_their_topic_and_everything_else(arena):
    for topic, name in STUBS.items():
        g = arena.graded[name]
        for other in TOPICS:
            got, possible = g.scores([other])[other]
            assert (got == 0) if other == topic else (got == possible > 0), (name, other, got, possible)


@pytest.mark.slow
@needs_sandbox
def test_hanging_submission_is_stopped(arena):
    g = arena.attacks["endless_loop"]
    assert any("did not finish" in c.message or "longer than" in c.message for c in g.results), g.results[:2]
    assert g.seconds < TIMEOUT_S + 15


@pytest.mark.slow
@needs_sandbox
def test_garbage_output_stays_out_of_the_results(arena):
    for check in arena.attacks["garbage_output"].results:
        assert "\x1b[" not in check.detail() and '"score": 100' not in check.detail()


# ---------------------------------------------------------------------------------------------------
# What the attacks did to the others


@pytest.mark.slow
@needs_sandbox
def test_victims_earn_what_they_earn_graded_alone(arena):
    for name in VICTIMS:
        with_attackers, alone = arena.graded[name], arena.alone[name]
        assert with_attackers.crash is None and alone.crash is None, (with_attackers.crash, alone.crash)
        assert with_attackers.scores(TOPICS) == alone.scores(TOPICS)
        assert {r.id: r.status for r in with_attackers.results} == {r.id: r.status for r in alone.results}
        assert all(got == possible > 0 for got, possible in with_attackers.scores(TOPICS).values())


@pytest.mark.slow
@needs_sandbox
def test_victims_original_files_are_untouched(arena):
    assert arena.victims_after == arena.victims_before


@pytest.mark.slow
@needs_sandbox
def test_the_gradebook_is_intact(arena):
    out = arena.out
    assert {n: (out / n).read_bytes() for n in (GRADEBOOK, JUNIT)} == arena.outputs, "an output changed after grading"
    with open(out / GRADEBOOK, newline="") as f:
        rows = {row["submission"]: row for row in csv.DictReader(f)}
    assert set(rows) == {"(points possible)", *arena.graded}
    possible = float(rows["(points possible)"]["total"])
    for name in VICTIMS:
        assert float(rows[name]["total"]) == possible
    for name, g in arena.graded.items():
        assert float(rows[name]["total"]) == sum(e for e, _ in g.scores(TOPICS).values())
        report = json.loads((out / name / RESULTS).read_text())
        assert report["score"] == float(rows[name]["total"]) and report["max_score"] == possible
    suites = {s.get("name") for s in ElementTree.parse(out / JUNIT).getroot().findall("testsuite")}
    assert suites == set(arena.graded)
    assert not list(out.glob(".*.tmp")), "a temporary output file was left behind"


@pytest.mark.slow
@needs_sandbox
def test_no_file_in_home_changed(arena):
    assert arena.home_after == arena.home_before


@pytest.mark.slow
@needs_sandbox
def test_no_byte_reached_the_listener(arena):
    assert arena.listener.connections == 0 and bytes(arena.listener.received) == b""


@pytest.mark.slow
@needs_sandbox
def test_the_points_file_is_unchanged(arena):
    assert arena.points_after == arena.points_before


@pytest.mark.slow
@needs_sandbox
def test_no_process_of_the_batch_is_left(arena):
    assert arena.left_at_once == ([], []), f"left when grading returned: {arena.left_at_once}"
    assert arena.left_after == ([], []), f"left {AFTERMATH_S} s later: {arena.left_after}"
