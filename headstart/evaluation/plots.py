"""Pictures people would rather look at than read: confusion matrices and accuracy-vs-labels curves."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _wrapped(title: str, chars: int) -> str:
    """Each line of a title broken to at most `chars` characters, so that a long one fits its figure."""
    import textwrap

    return "\n".join(part for line in title.splitlines() for part in (textwrap.wrap(line, chars) or [""]))


def confusion_png(confusion: list[list[int]], labels: list[str], path: Path, title: str) -> Path:
    """A row-normalised confusion matrix with the raw counts written in each cell."""
    plt = _pyplot()
    cm = np.asarray(confusion, dtype=float)
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = max(4.0, 0.55 * len(labels) + 2.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(_wrapped(title, chars=int(size * 11)), fontsize=10)
    if len(labels) <= 25:
        for i in range(len(labels)):
            for j in range(len(labels)):
                colour = "white" if norm[i, j] > 0.5 else "black"
                ax.text(j, i, int(cm[i, j]), ha="center", va="center", color=colour, fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fig.tight_layout()
    return _save(fig, path)


def budget_curve_png(rows: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Accuracy against labels per class, one line per method (rows: budget, method, accuracy)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    budgets = list(dict.fromkeys(str(r["budget"]) for r in rows))
    for method in methods:
        pts = [(budgets.index(str(r["budget"])), r["accuracy"]) for r in rows if r["method"] == method]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=method)
    ax.set_xticks(range(len(budgets)), budgets)
    ax.set_xlabel("labelled examples per class")
    ax.set_ylabel("test accuracy")
    low = min(r["accuracy"] for r in rows)
    ax.set_ylim(max(0.0, low - 0.1), 1.005)  # the differences between methods are what the picture is for
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(_wrapped(title, chars=66), fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _save(fig: Any, path: Path) -> Path:
    from headstart.paths import atomic_file

    path = Path(path)
    with atomic_file(path, "wb") as f:
        fig.savefig(f, format="png", dpi=110)
    _pyplot().close(fig)
    return path
