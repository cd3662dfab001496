"""What a fine-tuning run leaves beside its model: the resolved config, metrics per epoch (CSV, and TensorBoard
event files when the tensorboard package is installed), a learning curve."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from headstart.paths import atomic_file

CONFIG_FILE = "finetune-config.json"
METRICS_FILE = "metrics.csv"
CURVE_FILE = "learning-curve.png"
TENSORBOARD_DIR = "tensorboard"


def write_config(folder: Path, config: dict[str, Any], context: dict[str, Any]) -> Path:
    with atomic_file(folder / CONFIG_FILE) as f:
        json.dump({**config, "run": context}, f, indent=2, default=str)
    return folder / CONFIG_FILE


def write_metrics_csv(folder: Path, history: list[dict[str, Any]]) -> Path:
    columns = list(dict.fromkeys(k for row in history for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    with atomic_file(folder / METRICS_FILE) as f:
        f.write(buffer.getvalue())
    return folder / METRICS_FILE


def learning_curve_png(history: list[dict[str, Any]], path: Path, title: str, best_epoch: int | None) -> Path:
    """Training and validation loss (left axis) and validation accuracy (right axis) per epoch."""
    from headstart.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train loss")
    handles_from = [ax]
    if any("val_loss" in r for r in history):
        ax.plot(epochs, [r.get("val_loss") for r in history], marker="o", label="validation loss")
        acc = ax.twinx()
        acc.plot(
            epochs, [r.get("val_accuracy") for r in history], marker="s", color="tab:green", label="validation accuracy"
        )
        acc.set_ylabel("validation accuracy")
        acc.set_ylim(0, 1.02)
        handles_from.append(acc)
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    # one legend for both axes, below the plot, where it hides no point
    handles = [h for a in handles_from for h in a.get_legend_handles_labels()[0]]
    labels = [h.get_label() for h in handles]
    ax.legend(
        handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=len(handles), fontsize=8, frameon=False
    )
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


class TensorBoardLog:
    """Each epoch's numbers as TensorBoard scalars under `folder/tensorboard` (`tensorboard --logdir DIR`), when
    the tensorboard package is installed (`pip install tensorboard`); without it, nothing. A resumed run appends
    the epochs it runs."""

    def __init__(self, folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # torch raises it when the tensorboard package is missing
            self.writer = None
            return
        self.writer = SummaryWriter(log_dir=str(folder / TENSORBOARD_DIR))

    @property
    def enabled(self) -> bool:
        return self.writer is not None

    def epoch(self, row: dict[str, Any]) -> None:
        if self.writer is None:
            return
        for key, value in row.items():
            if key != "epoch" and isinstance(value, (int, float)) and not isinstance(value, bool):
                self.writer.add_scalar(key, value, global_step=int(row["epoch"]))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
