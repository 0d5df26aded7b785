"""Trained teachers kept between runs of `learnkd check all`, keyed by the code that trained them.

The key covers every regular file of the submission folder (names and bytes), the settings the caller
names (schedule, seed, device, a digest of the data) and the PyTorch version: change any of them and
the teacher is trained again.

Two writers use this folder with different keys. `learnkd check all` writes only from the judge
(``grader.grading.end_to_end``), never from the learner's code: an entry holds weights the judge
received as plain tensors, the graph it ran itself and the accuracy it measured on that graph, and it
is checked again when read (``judge_entry``). `learnkd reference` / `report` / experiments run trusted
code in-process (``grader.lab.pipeline``) and store only the weights, losses and seconds.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

ENTRY_VERSION = 2  # bump when what an entry holds changes: old entries stop matching


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("learnkd")) / "teachers"


def submission_files(folder: Path) -> list[Path]:
    """Every regular file of ``folder``, sorted; links, hidden entries and __pycache__ left out (as the
    grader's private copy of a submission leaves them out)."""
    folder = Path(folder)
    found = []
    for path in sorted(folder.rglob("*")) if folder.is_dir() else []:
        relative = path.relative_to(folder)
        if "__pycache__" in relative.parts or any(part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and not any(p.is_symlink() for p in [path, *path.parents][:len(relative.parts)]):
            found.append(path)
    return found


def cache_key(folder: Path, **settings) -> str:
    """A digest of every file of ``folder`` (names and bytes), of ``settings`` and of the torch version."""
    import torch

    digest = hashlib.sha256(f"learnkd teacher {ENTRY_VERSION}\0".encode())
    for path in submission_files(Path(folder)):
        data = path.read_bytes()
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + str(len(data)).encode() + b"\0" + data)
    digest.update(b"\0settings\0")
    for key in sorted(settings):
        digest.update(f"{key}={settings[key]!r}\0".encode())
    digest.update(torch.__version__.encode())
    return digest.hexdigest()[:32]


def path_of(cache_dir: str | Path, key: str) -> Path:
    return Path(cache_dir) / f"teacher-{key}.pt"


def load(cache_dir: str | Path | None, key: str) -> dict | None:
    """The saved entry, or None; a file that is missing, broken or not plain data (tensors, numbers,
    strings, lists, dicts: ``weights_only`` loading) counts as none."""
    import torch

    if not cache_dir:
        return None
    path = path_of(cache_dir, key)
    if not path.is_file():
        return None
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a partial, stale or foreign file: train again
        return None
    return entry if isinstance(entry, dict) else None


def save(cache_dir: str | Path | None, key: str, entry: dict) -> bool:
    """Write ``entry`` atomically (a temporary file, then a rename); False when it could not be written."""
    import torch

    if not cache_dir:
        return False
    path = path_of(cache_dir, key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        torch.save(entry, tmp)
        tmp.replace(path)
        return True
    except (OSError, RuntimeError):
        return False  # a cache that cannot be written only costs time


# ---------------------------------------------------------------------------------------------------
# The judge's entries


def plain_state_dict(value) -> bool:
    """A state_dict of plain tensors only: names -> torch.Tensor (exactly that class)."""
    import torch

    return isinstance(value, dict) and all(type(k) is str and type(v) is torch.Tensor for k, v in value.items())


def plain_data(value, depth: int = 0) -> bool:
    """Only what ``weights_only`` loading gives back and a graph is made of: no object of another class."""
    import torch

    if depth > 40:
        return False
    if value is None or type(value) in (bool, int, float, str) or type(value) is torch.Tensor:
        return True
    if isinstance(value, torch.dtype):
        return True
    if type(value) in (list, tuple):
        return all(plain_data(v, depth + 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and plain_data(v, depth + 1) for k, v in value.items())
    return False


def judge_entry(entry) -> dict | None:
    """``entry`` if it is one the judge wrote and can use: state_dict, graph, accuracy, losses, seconds."""
    if not isinstance(entry, dict) or entry.get("version") != ENTRY_VERSION:
        return None
    accuracy, seconds, losses = entry.get("accuracy"), entry.get("seconds"), entry.get("losses")
    if type(accuracy) is not float or not 0.0 <= accuracy <= 1.0:
        return None
    if type(seconds) not in (int, float) or not math.isfinite(seconds) or seconds < 0:
        return None
    if type(losses) is not list or not all(v is None or type(v) is float for v in losses):
        return None
    if not plain_state_dict(entry.get("state_dict")) or not isinstance(entry.get("graph"), dict):
        return None
    if not plain_data(entry["graph"]):
        return None
    return entry
