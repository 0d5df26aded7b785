"""Real MNIST for the course: where it lives, how its IDX files are read, and fast in-memory batches.

The data folder is chosen by, in order: an explicit ``data_dir`` (the CLI's ``--data-dir``), the
environment variable ``LEARNKD_DATA``, then a per-user cache folder. Inside it the four standard files
live in ``<data>/MNIST/raw/``, gzip-compressed (``.gz``) or not, exactly where torchvision's
``datasets.MNIST`` puts them. When they are missing, torchvision downloads them (internet needed).
"""

from __future__ import annotations

import gzip
import os
import zlib
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor

# PyTorch loads when a split is read into tensors, not before: `learnkd check` checks the files (check_split)
# without it, so that the judge starts seconds sooner.

ENV_VAR = "LEARNKD_DATA"
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60_000),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10_000),
}
# IDX type codes (the third byte of the magic number) that MNIST-format files use, and their torch dtype.
IDX_DTYPES = {0x08: "uint8"}
# The worker's data helpers, one copy (grader.worker.scenarios), also offered here: loaded with PyTorch when asked for.
FROM_SCENARIOS = ("MEAN", "STD", "Batches", "normalise")


def __getattr__(name: str):
    if name in FROM_SCENARIOS:
        from grader.worker import scenarios

        return getattr(scenarios, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class DataError(Exception):
    """A data problem the user can fix; the message is one paragraph that says how."""


def default_data_dir() -> Path:
    """The per-user cache folder used when neither --data-dir nor LEARNKD_DATA is given."""
    import platformdirs

    return Path(platformdirs.user_cache_dir("learnkd")) / "data"


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> tuple[Path, str]:
    """The data folder and, for messages, how it was chosen."""
    if data_dir:
        return Path(data_dir).expanduser(), "from --data-dir"
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser(), f"from the environment variable {ENV_VAR}"
    return default_data_dir(), "the default cache folder"


def raw_dir(root: Path) -> Path:
    return root / "MNIST" / "raw"


def find_raw_file(root: Path, name: str) -> Path | None:
    """``name`` or ``name.gz`` in ``<root>/MNIST/raw/``; None when neither exists."""
    for candidate in (raw_dir(root) / name, raw_dir(root) / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    return None


def read_idx(path: str | os.PathLike) -> Tensor:
    """Read one IDX file (gzip-compressed or not) of unsigned bytes into a tensor of its shape.

    Raises DataError naming the file when it is truncated, corrupt or not an IDX file of bytes.
    """
    import torch

    data, shape, header = parse_idx(path)
    values = torch.frombuffer(bytearray(data), dtype=getattr(torch, IDX_DTYPES[data[2]]), offset=header)
    return values.reshape(shape)


def parse_idx(path: str | os.PathLike) -> tuple[bytes, list[int], int]:
    """An IDX file's bytes, its shape and the length of its header, once checked (DataError as read_idx)."""
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise DataError(
            f"Could not read the data file {path}: {err}. The file is corrupt or truncated; "
            "delete it so that it is downloaded again, or replace it with a good copy."
        ) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in IDX_DTYPES:
        raise DataError(
            f"The data file {path} is not an IDX file of unsigned bytes (its first bytes are "
            f"{data[:4].hex() or 'missing'}). Replace it with the MNIST file of that name."
        )
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    count = 1
    for size in shape:
        count *= size
    if count == 0:
        raise DataError(
            f"The data file {path} holds no values (its header announces shape {tuple(shape)}). Delete it so "
            "that it is downloaded again, or replace it with a good copy."
        )
    if len(data) < header or len(data) - header != count:
        raise DataError(
            f"The data file {path} is truncated or corrupt: its header announces shape {tuple(shape)} "
            f"({count} values) but it holds {max(len(data) - header, 0)}. Delete it so that it is "
            "downloaded again, or replace it with a good copy."
        )
    return data, shape, header


def _download(root: Path, how: str) -> None:
    """Let torchvision fetch MNIST into ``<root>/MNIST/raw/``; DataError when that fails."""
    try:
        from torchvision import datasets

        for train in (True, False):
            datasets.MNIST(str(root), train=train, download=True)
    except Exception as err:  # any network or disk failure ends in the same advice
        # torchvision says "Error downloading F:\nTried URL, got:\n<urlopen error ...>": first and last lines
        lines = [line.strip() for line in str(err).splitlines() if line.strip()] or [type(err).__name__]
        reason = lines[0].rstrip(":") + (f": {lines[-1]}" if len(lines) > 1 else "")
        raise DataError(
            f"MNIST was not found and could not be downloaded. learnkd looked in {raw_dir(root)} "
            f"({how}) for the four MNIST files (train-images-idx3-ubyte, train-labels-idx1-ubyte, "
            f"t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte, each optionally ending in .gz) and then "
            f"tried to download them ({reason}). To fix it, connect to the internet and run again, or "
            f"point learnkd at a folder that holds MNIST/raw/ with those files: pass --data-dir DIR or "
            f"set {ENV_VAR}=DIR."
        ) from None


@lru_cache(maxsize=4)
def load_raw(split: str, root: Path, how: str = "", download: bool = True) -> tuple[Tensor, Tensor]:
    """Images ``(N, 28, 28)`` uint8 and labels ``(N,)`` int64 of one split, read once per process."""
    paths = split_files(split, root, how, download)
    images, labels = read_idx(paths[0]), read_idx(paths[1])
    check_pair(paths, list(images.shape), list(labels.shape))
    return images, labels.long()


def check_split(split: str, root: Path, how: str = "", download: bool = True) -> None:
    """What load_raw checks (the files are there, or downloaded; whole; of matching shapes), without PyTorch."""
    paths = split_files(split, root, how, download)
    check_pair(paths, parse_idx(paths[0])[1], parse_idx(paths[1])[1])


def split_files(split: str, root: Path, how: str, download: bool) -> list[Path]:
    """The images and labels files of ``split``, downloaded first when they are missing and ``download``."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, not {split!r}")
    image_name, label_name, _ = SPLITS[split]
    paths = [find_raw_file(root, image_name), find_raw_file(root, label_name)]
    if None in paths:
        if not download:
            raise DataError(f"MNIST was not found in {raw_dir(root)} ({how}) and download is off.")
        _download(root, how)
        paths = [find_raw_file(root, image_name), find_raw_file(root, label_name)]
    return paths


def check_pair(paths: list[Path], images: list[int], labels: list[int]) -> None:
    """Images of shape (N, H, W) and labels of shape (N,), else DataError naming both files."""
    if len(images) != 3 or len(labels) != 1 or images[0] != labels[0]:
        raise DataError(
            f"The MNIST files {paths[0]} and {paths[1]} do not match: images of shape "
            f"{tuple(images)} and labels of shape {tuple(labels)}. Replace them with good copies."
        )


def load_mnist(split: str = "train", data_dir=None, limit: int | None = None,
               download: bool = True) -> tuple[Tensor, Tensor]:
    """The whole split as normalised tensors: x ``(N, 1, 28, 28)`` float32, y ``(N,)`` int64.

    ``limit`` keeps the first ``limit`` examples (a quick subset; MNIST's order is already mixed).
    """
    root, how = resolve_data_dir(data_dir)
    images, labels = load_raw(split, root.resolve(), how, download)
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    from grader.worker.scenarios import normalise

    return normalise(images), labels.clone()
