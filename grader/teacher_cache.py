"""Trained teachers kept between runs of `learnkd check all`, keyed by the code that trained them.

The key covers the learner's models.py and train.py, the schedule, the seed, the device and the
PyTorch version: change any of them and the teacher is trained again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def default_cache_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_cache_dir("learnkd")) / "teachers"


def cache_key(folder: Path, **settings) -> str:
    import torch

    digest = hashlib.sha256()
    for name in ("models.py", "train.py"):
        path = Path(folder) / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.exists() else b"") + b"\0")
    for key in sorted(settings):
        digest.update(f"{key}={settings[key]}\0".encode())
    digest.update(torch.__version__.encode())
    return digest.hexdigest()[:24]


def load(cache_dir: str | Path | None, key: str) -> dict | None:
    """The saved entry ({'state_dict', 'accuracy', 'seconds'}) or None; a broken file counts as none."""
    import torch

    if not cache_dir:
        return None
    path = Path(cache_dir) / f"teacher-{key}.pt"
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a partial or stale file: train again
        return None


def save(cache_dir: str | Path | None, key: str, entry: dict) -> None:
    import torch

    if not cache_dir:
        return
    path = Path(cache_dir) / f"teacher-{key}.pt"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        torch.save(entry, tmp)
        tmp.replace(path)
    except OSError:
        pass  # a cache that cannot be written only costs time
