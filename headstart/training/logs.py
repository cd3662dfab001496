"""What every training run logs per epoch: metrics.csv, and TensorBoard event files when the tensorboard package is
installed (`tensorboard --logdir DIR`)."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from headstart.paths import atomic_file

METRICS_FILE = "metrics.csv"
TENSORBOARD_DIR = "tensorboard"


def write_metrics_csv(folder: Path, history: list[dict[str, Any]]) -> Path:
    columns = list(dict.fromkeys(k for row in history for k in row))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns)
    writer.writeheader()
    writer.writerows(history)
    with atomic_file(folder / METRICS_FILE) as f:
        f.write(buffer.getvalue())
    return folder / METRICS_FILE


class TensorBoardLog:
    """Each epoch's numbers as TensorBoard scalars under `folder/tensorboard`, when the tensorboard package is
    installed (`pip install tensorboard`); without it, nothing. A resumed run appends the epochs it runs."""

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
