"""One epoch of MNIST training data: learnkd's in-memory path against the seed lab's DataLoader.

learnkd:   load_mnist("train") (the IDX files read and normalised once, timed apart) + Batches(shuffle=True)
seed lab:  torchvision.datasets.MNIST(transform=ToTensor()) + DataLoader(shuffle=True), its way of reading
           one PIL image at a time (it needs the decompressed IDX files: they are written to a temp folder)

Both visit all 60,000 training examples in shuffled batches and touch each batch (sum of x, count of y).
Each measurement is repeated; the medians and the ratio are printed. Run:

    LEARNKD_DATA=/work/shared/data python benchmarks/bench_data.py [--repeats 3] [--batch-sizes 128 64]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import torch

from grader.lab import data
from grader.lab.data import Batches, load_mnist

TARGET_SPEEDUP = 5.0  # the fast path exists to make a training epoch's data cost negligible


def touch(batches) -> tuple[float, int]:
    """Visit every batch the way a training loop would read it."""
    total, count = 0.0, 0
    for x, y in batches:
        total += float(x.sum())
        count += int(y.numel())
    return total, count


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def decompressed_copy(root: Path, into: Path) -> Path:
    """torchvision's MNIST reads ``MNIST/raw/<name>`` without .gz; write those files under ``into``."""
    raw = into / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split in data.SPLITS.values():
        for name in split[:2]:
            source = data.find_raw_file(root, name)
            opener = gzip.open if source.suffix == ".gz" else open
            with opener(source, "rb") as f, open(raw / name, "wb") as out:
                shutil.copyfileobj(f, out)
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None, help="folder holding MNIST/raw (default: $LEARNKD_DATA)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 64])
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    root, how = data.resolve_data_dir(args.data_dir)
    print(f"MNIST from {root} ({how}); torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}; {args.repeats} repeats, medians")

    learnkd_load, seed_load = [], []
    learnkd_epoch = {b: [] for b in args.batch_sizes}
    seed_epoch = {b: [] for b in args.batch_sizes}
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        decompressed_copy(root.resolve(), Path(tmp))
        for repeat in range(args.repeats):
            data.load_raw.cache_clear()  # a cold load each time: read, decompress, normalise
            seconds, (x, y) = timed(lambda: load_mnist("train", data_dir=root))
            learnkd_load.append(seconds)
            seconds, train_set = timed(lambda: datasets.MNIST(tmp, train=True, download=False,
                                                              transform=transforms.ToTensor()))
            seed_load.append(seconds)
            for b in args.batch_sizes:
                seconds, (_, count) = timed(lambda: touch(Batches(x, y, b, shuffle=True, seed=repeat)))
                assert count == 60_000
                learnkd_epoch[b].append(seconds)
                seconds, (_, count) = timed(lambda: touch(DataLoader(train_set, batch_size=b, shuffle=True)))
                assert count == 60_000
                seed_epoch[b].append(seconds)

    med = statistics.median
    print(f"{'':34}{'learnkd':>10}{'seed lab':>10}{'ratio':>8}")
    print(f"{'load the training set (s)':34}{med(learnkd_load):10.3f}{med(seed_load):10.3f}"
          f"{med(seed_load) / med(learnkd_load):8.1f}")
    for b in args.batch_sizes:
        fast, slow = med(learnkd_epoch[b]), med(seed_epoch[b])
        verdict = "ok" if slow / fast >= TARGET_SPEEDUP else f"below the {TARGET_SPEEDUP:g}x target"
        print(f"{f'one epoch, batch {b} (s)':34}{fast:10.3f}{slow:10.3f}{slow / fast:8.1f}  {verdict}")
        first = med(learnkd_load) + fast
        print(f"{f'  load + one epoch, batch {b} (s)':34}{first:10.3f}{med(seed_load) + slow:10.3f}"
              f"{(med(seed_load) + slow) / first:8.1f}")
    print("all runs (s): learnkd load " + ", ".join(f"{t:.2f}" for t in learnkd_load)
          + "; " + "; ".join(f"batch {b}: learnkd " + ", ".join(f"{t:.2f}" for t in learnkd_epoch[b])
                             + " / seed lab " + ", ".join(f"{t:.2f}" for t in seed_epoch[b])
                             for b in args.batch_sizes))


if __name__ == "__main__":
    main()
