"""Constants and helpers shared by the fine-tuning tests (a module: conftest files are not for importing)."""

from __future__ import annotations

TINY_CNN = "headstart:tiny-cnn?size=32"
# fast and deterministic: no DataLoader workers, no baseline, no progress bars
FAST = {"num_workers": 0, "baseline": False, "progress": False, "batch_size": 16}
