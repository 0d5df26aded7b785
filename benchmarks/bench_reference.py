"""One `learnkd reference` seed against the seed lab's recipe as written, side by side.

    python benchmarks/bench_reference.py [--data-dir DIR] [--seed 0] [--repeats 3] [--skip-baseline] [--keep DIR]

The reference: `learnkd reference --seeds 1` as a real command (process start, data, three trainings,
latency, figures), timed on the wall clock; its accuracies and parameter counts come from its report.json.
--repeats N runs it for seeds --seed .. --seed + N - 1 and judges the median wall time and the lowest accuracies.
The baseline: the seed lab's code (/work/shared/seed/lab_09_*.md) as written: torchvision's MNIST read from
a decompressed copy of the data in a temporary folder, DataLoader with ToTensor, batch 64, its global-average-
pooling Teacher and Student, constant-lr Adam, 5 epochs of training and 5 of distillation. Its timing covers
the same steps (data, the two trainings, the evaluations). Targets of the course (issue 5): the reference
seed in at most 60 s, Teacher >= 99.0%, distilled Student >= 97.5% with >= 10x fewer parameters.
Not a test: the baseline alone takes about 5 minutes on a 2-core laptop.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LEARNKD = shutil.which("learnkd") or str(Path(sys.executable).with_name("learnkd"))
TARGET_SECONDS, TARGET_TEACHER, TARGET_STUDENT, TARGET_RATIO = 60, 0.990, 0.975, 10


def reference(data_dir: str | None, seed: int, out: Path) -> dict:
    env = dict(os.environ)
    if data_dir:
        env["LEARNKD_DATA"] = str(Path(data_dir).resolve())
    start = time.perf_counter()
    proc = subprocess.run([LEARNKD, "reference", "--seeds", "1", "--seed", str(seed), "--out", str(out)],
                          capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"learnkd reference failed (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr[-3000:]}")
    print(proc.stdout)
    summary = json.loads((out / "report.json").read_text())
    m = summary["models"]
    return {"seconds": seconds, "teacher": m["teacher"]["accuracy"]["mean"],
            "student": m["student_distilled"]["accuracy"]["mean"], "hard": m["student_hard"]["accuracy"]["mean"],
            "teacher_params": m["teacher"]["parameters"], "student_params": m["student_distilled"]["parameters"]}


def seed_lab(data_dir: str | None, seed: int) -> dict:
    """The seed lab's sections 1-6, as written (plus a seed and timers)."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    import torchvision
    import torchvision.transforms as transforms
    from torch.utils.data import DataLoader

    source = Path(data_dir or os.environ.get("LEARNKD_DATA", "")) / "MNIST" / "raw"
    with tempfile.TemporaryDirectory(prefix="learnkd-bench-") as tmp:
        raw = Path(tmp) / "MNIST" / "raw"
        raw.mkdir(parents=True)
        for path in source.glob("*-ubyte*"):
            target = raw / path.name.removesuffix(".gz")
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rb") as f:
                target.write_bytes(f.read())
        torch.manual_seed(seed)
        start = time.perf_counter()

        # Section 1
        transform = transforms.ToTensor()
        train_set = torchvision.datasets.MNIST(root=tmp, train=True, download=False, transform=transform)
        test_set = torchvision.datasets.MNIST(root=tmp, train=False, download=False, transform=transform)
        train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
        test_loader = DataLoader(test_set, batch_size=64, shuffle=False)

        # Section 2
        class Teacher(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Sequential(
                    nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                    nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
                    nn.AdaptiveAvgPool2d((1, 1)),
                    nn.Flatten(),
                    nn.Linear(64, 10)
                )

            def forward(self, x):
                return self.net(x)

        class Student(nn.Module):
            def __init__(self):
                super().__init__()
                self.net = nn.Sequential(
                    nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(),
                    nn.AdaptiveAvgPool2d((1, 1)),
                    nn.Flatten(),
                    nn.Linear(16, 10)
                )

            def forward(self, x):
                return self.net(x)

        # Section 3
        def train_model(model, loader, epochs=3):
            model.train()
            opt = torch.optim.Adam(model.parameters())
            for epoch in range(epochs):
                for x, y in loader:
                    out = model(x)
                    loss = F.cross_entropy(out, y)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()

        def evaluate(model, loader):
            model.eval()
            correct, total = 0, 0
            with torch.no_grad():
                for x, y in loader:
                    pred = model(x).argmax(1)
                    correct += (pred == y).sum().item()
                    total += y.size(0)
            return correct / total

        teacher = Teacher()
        train_model(teacher, train_loader, epochs=5)
        teacher_accuracy = evaluate(teacher, test_loader)
        print("Teacher Accuracy:", teacher_accuracy, f"({time.perf_counter() - start:.0f} s)", flush=True)

        # Section 4
        def distillation_loss(student_logits, teacher_logits, labels, T=2.0, alpha=0.7):
            soft_loss = F.kl_div(
                F.log_softmax(student_logits / T, dim=1),
                F.softmax(teacher_logits / T, dim=1),
                reduction='batchmean'
            ) * (T ** 2)
            hard_loss = F.cross_entropy(student_logits, labels)
            return alpha * soft_loss + (1 - alpha) * hard_loss

        # Section 5
        student = Student()
        opt = torch.optim.Adam(student.parameters())
        T = 2.0  # Temperature
        alpha = 0.7

        for epoch in range(5):
            student.train()
            for x, y in train_loader:
                with torch.no_grad():
                    teacher_logits = teacher(x)
                student_logits = student(x)
                loss = distillation_loss(student_logits, teacher_logits, y, T=T, alpha=alpha)
                opt.zero_grad()
                loss.backward()
                opt.step()

        # Section 6
        acc_student = evaluate(student, test_loader)
        print(f"Student Accuracy (Distilled): {acc_student:.4f}")
        seconds = time.perf_counter() - start
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    return {"seconds": seconds, "teacher": teacher_accuracy, "student": acc_student, "hard": None,
            "teacher_params": count(teacher), "student_params": count(student)}


def verdicts(refs: list[dict]) -> list[str]:
    """The targets of issue 5, judged on the median wall time and the lowest accuracies of the repeats."""
    seconds = statistics.median(r["seconds"] for r in refs)
    teacher, student = min(r["teacher"] for r in refs), min(r["student"] for r in refs)
    ratio = refs[0]["teacher_params"] / refs[0]["student_params"]
    marks = lambda ok: "ok  " if ok else "MISS"  # noqa: E731
    of = f" (median of {len(refs)})" if len(refs) > 1 else ""
    lowest = "lowest " if len(refs) > 1 else ""
    return [f"{marks(seconds <= TARGET_SECONDS)} one reference seed {seconds:.0f} s{of} (target <= {TARGET_SECONDS} s)",
            f"{marks(teacher >= TARGET_TEACHER)} {lowest}teacher {teacher:.2%} (target >= {TARGET_TEACHER:.1%})",
            f"{marks(student >= TARGET_STUDENT)} {lowest}distilled student {student:.2%} (target >= {TARGET_STUDENT:.1%})",
            f"{marks(ratio >= TARGET_RATIO)} {ratio:.0f}x fewer parameters (target >= {TARGET_RATIO}x)"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("LEARNKD_DATA"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=1, help="Reference runs, one seed each (median time).")
    parser.add_argument("--skip-baseline", action="store_true", help="Only the reference run (skip the ~5 min seed lab).")
    parser.add_argument("--keep", type=Path, help="Keep the reference run's report and figures in this folder.")
    args = parser.parse_args()
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, "
          f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}", flush=True)
    refs = []
    for seed in range(args.seed, args.seed + args.repeats):
        with tempfile.TemporaryDirectory(prefix="learnkd-reference-") as tmp:
            refs.append(reference(args.data_dir, seed, args.keep or Path(tmp)))
    rows = {f"learnkd reference (seed {args.seed + i})": r for i, r in enumerate(refs)}
    ref = dict(refs[0], seconds=statistics.median(r["seconds"] for r in refs))
    if len(refs) > 1:
        rows[f"  median of {len(refs)}"] = dict(ref, teacher=statistics.median(r["teacher"] for r in refs),
                                              student=statistics.median(r["student"] for r in refs),
                                              hard=statistics.median(r["hard"] for r in refs))
        ref = rows[f"  median of {len(refs)}"]
    if not args.skip_baseline:
        print("the seed lab's recipe as written (5 + 5 epochs, batch 64, DataLoader + ToTensor) ...", flush=True)
        rows["seed lab, as written"] = seed_lab(args.data_dir, args.seed)
    print(f"\n{'':<28}{'wall time':>10}{'teacher':>9}{'distilled':>11}{'hard labels':>13}{'teacher params':>16}{'student params':>16}")
    for name, r in rows.items():
        hard = "-" if r["hard"] is None else f"{r['hard']:.2%}"
        print(f"{name:<28}{r['seconds']:>8.0f} s{r['teacher']:>9.2%}{r['student']:>11.2%}{hard:>13}"
              f"{r['teacher_params']:>16,}{r['student_params']:>16,}")
    if "seed lab, as written" in rows:
        base = rows["seed lab, as written"]
        print(f"the reference seed took {ref['seconds'] / base['seconds']:.2f}x the seed lab's time "
              f"({base['seconds'] / ref['seconds']:.1f}x faster), for +{100 * (ref['teacher'] - base['teacher']):.1f} "
              f"points (teacher) and +{100 * (ref['student'] - base['student']):.1f} points (student)")
    print(f"load average after: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    for line in verdicts(refs):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
