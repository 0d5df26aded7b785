"""The figures of `learnkd reference`, `learnkd report` and `learnkd experiment` (matplotlib, PNG files).

Each function draws one figure from a report's figures (and, for the soft targets, the kept teacher
logits) and saves it; none shows a window (the Agg backend), so they run on servers and in CI.
"""

from __future__ import annotations

from pathlib import Path

COLORS = {"teacher": "#1f77b4", "student_distilled": "#ff7f0e", "student_hard": "#7f7f7f"}
LABELS = {"teacher": "Teacher", "student_distilled": "Student, distilled", "student_hard": "Student, hard labels only"}
SOFT_TEMPERATURES = (1, 2, 5, 10)
DPI = 120


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": 10, "axes.titlesize": 11, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def save(fig, path: Path) -> str:
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    pyplot().close(fig)
    return Path(path).name


def accuracy_vs_parameters(summary: dict, path: Path) -> str:
    """Test accuracy against parameter count (log scale), one point per model with its seed spread."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    models = summary["models"]
    # the two students share a parameter count: drawn a little apart so that neither hides the other
    shift = {"student_distilled": 0.88, "student_hard": 1.14}
    for key, m in models.items():
        acc = m["accuracy"]
        ax.errorbar(m["parameters"] * shift.get(key, 1.0), 100 * acc["mean"], yerr=100 * acc["std"], fmt="o",
                    ms=9, capsize=4, color=COLORS[key],
                    label=f"{LABELS[key]}: {100 * acc['mean']:.2f}%, {m['parameters']:,} parameters")
    ax.set_xscale("log")
    ax.set_xlim(min(m["parameters"] for m in models.values()) / 3, max(m["parameters"] for m in models.values()) * 3)
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel("test accuracy (%)")
    n = len(summary["seeds"])
    ax.set_title(f"Accuracy against size on MNIST ({n} seed{'s' if n > 1 else ''}"
                 f"{', bars: ±1 std' if n > 1 else ''})")
    ax.margins(y=0.25)
    ax.legend(loc="upper left", fontsize=9)  # the students sit bottom left, the teacher top right
    return save(fig, path)


def training_curves(summary: dict, path: Path) -> str:
    """Test accuracy during training (first seed) and the mean training loss of each epoch."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, m in summary["models"].items():
        run = m["runs"][0]
        if run["curve"]:
            epochs, accs = zip(*run["curve"])
            left.plot(epochs, [100 * a for a in accs], "o-", ms=3, color=COLORS[key], label=LABELS[key])
        if run["losses"]:
            label = LABELS[key] + (" (distillation loss)" if key == "student_distilled" else " (cross-entropy)")
            right.plot(range(1, len(run["losses"]) + 1), run["losses"], "o-", color=COLORS[key], label=label)
    left.set_xlabel("epoch")
    left.set_ylabel("test accuracy (%), first 2,000 test images")
    left.set_title("Test accuracy during training")
    left.legend(loc="lower right", fontsize=9)
    right.set_xlabel("epoch")
    right.set_ylabel("mean training loss of the epoch")
    right.set_title("Training loss (the two losses are not on the same scale)")
    right.legend(loc="upper right", fontsize=9)
    right.xaxis.get_major_locator().set_params(integer=True)
    fig.tight_layout()
    return save(fig, path)


def pick_example(logits, labels) -> int:
    """A test image the teacher gets right and is sure of (>= 95%) but whose runner-up is the most visible."""
    import torch

    p = torch.softmax(logits, dim=1)
    top2 = p.topk(2, dim=1)
    ok = (top2.indices[:, 0] == labels) & (top2.values[:, 0] >= 0.95)
    score = torch.where(ok, top2.values[:, 1], torch.full_like(top2.values[:, 1], -1.0))
    return int(score.argmax())


def soft_targets(logits, images, labels, path: Path, temperatures=SOFT_TEMPERATURES) -> str:
    """One test digit and the teacher's softmax of it at several temperatures."""
    import torch

    from grader.lab.data import MEAN, STD

    plt = pyplot()
    i = pick_example(logits, labels)
    fig, axes = plt.subplots(1, len(temperatures) + 1, figsize=(3.0 * (len(temperatures) + 1), 3.2),
                             gridspec_kw={"width_ratios": [0.8] + [1] * len(temperatures)})
    axes[0].imshow((images[i, 0] * STD + MEAN).numpy(), cmap="gray_r")
    axes[0].set_title(f"test image {i}: a {int(labels[i])}")
    axes[0].axis("off")
    for ax, T in zip(axes[1:], temperatures):
        p = torch.softmax(logits[i] / T, dim=0)
        bars = ax.bar(range(10), p.numpy(), color="#1f77b4")
        bars[int(labels[i])].set_color("#d62728")
        ax.set_ylim(0, 1)
        ax.set_xticks(range(10))
        ax.set_xlabel("digit")
        ax.set_title(f"T = {T}")
        runner_up = int(p.topk(2).indices[1])
        ax.text(0.98, 0.95, f"runner-up: {runner_up} ({p[runner_up]:.1%})", transform=ax.transAxes,
                ha="right", va="top", fontsize=8)
    axes[1].set_ylabel("teacher's probability")
    fig.suptitle("The teacher's soft targets for one digit: a higher temperature shows which wrong digits "
                 "it finds plausible (red: the true digit)", fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def dark_knowledge(logits, labels, T: float, path: Path) -> str:
    """The teacher's average softmax at temperature T for each true digit: which digits it thinks alike."""
    import torch
    from matplotlib.colors import LogNorm

    plt = pyplot()
    p = torch.softmax(logits / T, dim=1)
    matrix = torch.stack([p[labels == d].mean(dim=0) for d in range(10)]).numpy()  # (true digit, digit)
    fig, ax = plt.subplots(figsize=(7.2, 6.2))
    image = ax.imshow(matrix, cmap="viridis", norm=LogNorm(vmin=max(matrix.min(), 1e-5), vmax=1.0))
    for t in range(10):
        for q in range(10):
            value = matrix[t, q]
            text = f"{100 * value:.0f}" if value >= 0.1 else f"{100 * value:.1f}" if value >= 0.001 else ""
            ax.text(q, t, text, ha="center", va="center", fontsize=7.5,
                    color="black" if value > 0.05 else "white")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("digit the teacher gives probability to")
    ax.set_ylabel("true digit of the test image")
    ax.grid(False)
    ax.set_title(f'"Dark knowledge": the teacher\'s average soft prediction per digit (T = {T:g})\n'
                 "in % (blank: below 0.1%); colour on a log scale")
    fig.colorbar(image, ax=ax, label="mean probability (log scale)", shrink=0.85)
    return save(fig, path)


def confusion(summary: dict, path: Path) -> str:
    """Each model's mistakes on the test set: counts of true digit (row) predicted as another (column)."""
    import numpy as np

    plt = pyplot()
    models = [(k, m) for k, m in summary["models"].items() if m["confusion"]]
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 5.0))
    highest = max(max(c for r, row in enumerate(m["confusion"]) for q, c in enumerate(row) if q != r) for _, m in models)
    for ax, (key, m) in zip(np.atleast_1d(axes), models):
        counts = np.array(m["confusion"], dtype=float)
        errors = counts.copy()
        np.fill_diagonal(errors, np.nan)  # the correct answers would drown the mistakes
        ax.imshow(errors, cmap="Reds", vmin=0, vmax=max(highest, 1))
        for t in range(10):
            for q in range(10):
                if t != q and counts[t, q]:
                    ax.text(q, t, f"{int(counts[t, q])}", ha="center", va="center", fontsize=7.5,
                            color="white" if counts[t, q] > 0.6 * highest else "black")
        wrong = int(counts.sum() - np.trace(counts))
        ax.set_title(f"{LABELS[key]}: {wrong} mistakes")
        ax.set_xticks(range(10))
        ax.set_yticks(range(10))
        ax.set_xlabel("predicted digit")
        ax.set_ylabel("true digit")
        ax.grid(False)
    fig.suptitle("Mistakes on the 10,000 test images (first seed; the diagonal, correct answers, is left out)",
                 fontsize=11)
    fig.tight_layout()
    return save(fig, path)


def report_figures(summary: dict, teacher_logits, images, labels, folder: Path) -> dict[str, str]:
    """Every figure of a report, in ``folder``; returns {figure: file name}."""
    folder = Path(folder)
    T = summary["schedule"]["T"]
    return {
        "accuracy_vs_parameters": accuracy_vs_parameters(summary, folder / "accuracy_vs_parameters.png"),
        "training_curves": training_curves(summary, folder / "training_curves.png"),
        "soft_targets": soft_targets(teacher_logits, images, labels, folder / "soft_targets.png"),
        "dark_knowledge": dark_knowledge(teacher_logits, labels, T, folder / "dark_knowledge.png"),
        "confusion": confusion(summary, folder / "confusion.png"),
    }


def experiment_figure(result: dict, path: Path) -> str:
    """One experiment's accuracies: a line per series (e.g. distilled, hard labels) against its variable."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.8, 4.4))
    styles = {"distilled": ("o-", "#ff7f0e"), "hard labels": ("s--", "#7f7f7f")}
    for name, series in result["series"].items():
        style, color = styles.get(name, ("o-", None))
        xs = [point["x"] for point in series]
        means = [100 * point["accuracy"]["mean"] for point in series]
        stds = [100 * point["accuracy"]["std"] for point in series]
        if len(xs) == 1 and result.get("baseline_line"):
            ax.axhline(means[0], ls="--", color=color, label=f"{name}: {means[0]:.2f}%")
            continue
        ax.errorbar(xs, means, yerr=stds if any(stds) else None, fmt=style, color=color, capsize=3, label=name)
        for x, y in zip(xs, means):
            below = name == "hard labels"  # the baseline's values under its points, the others' above
            ax.annotate(f"{y:.1f}", (x, y), textcoords="offset points", xytext=(0, -13 if below else 7),
                        ha="center", fontsize=8, color=color)
    if result.get("log_x"):
        ax.set_xscale("log")
        ax.set_xticks([p["x"] for p in next(iter(result["series"].values()))])
        ax.set_xticklabels([p.get("label", f"{p['x']:g}") for p in next(iter(result["series"].values()))])
        ax.minorticks_off()
    ax.margins(x=0.06, y=0.15)  # room for the value labels above the points
    ax.set_xlabel(result["x_label"])
    ax.set_ylabel(result.get("y_label", "student test accuracy (%)"))
    ax.set_title(result["title"], fontsize=10)
    ax.legend(loc="best", fontsize=9)
    return save(fig, path)


def missing_digit_figure(result: dict, path: Path) -> str:
    """Recall on the test 3s and overall accuracy, per student, before and after the bias correction."""
    import numpy as np

    plt = pyplot()
    rows = result["students"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = list(rows)
    x = np.arange(len(names))
    for ax, metric, title in ((left, "threes", f"test 3s recognised (of {result['test_threes']:,})"),
                              (right, "accuracy", "accuracy on all 10,000 test images")):
        before = [100 * rows[n][metric]["mean"] for n in names]
        after = [100 * rows[n][f"{metric}_corrected"]["mean"] for n in names]
        b1 = ax.bar(x - 0.2, before, 0.4, label="as trained", color="#7f7f7f")
        b2 = ax.bar(x + 0.2, after, 0.4, label="3's bias raised (chosen on held-out training images)",
                    color="#ff7f0e")
        ax.bar_label(b1, fmt="%.1f", fontsize=8)
        ax.bar_label(b2, fmt="%.1f", fontsize=8)
        ax.set_xticks(x)
        ax.set_xticklabels(names)
        ax.set_ylim(0, 109)
        ax.set_ylabel("%")
        ax.set_title(title)
    handles, labels = left.get_legend_handles_labels()
    fig.suptitle(result["title"], fontsize=11)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(handles, labels, loc="lower center", ncol=2, fontsize=9)  # under the panels: no bar hides it
    return save(fig, path)
