"""Constants and helpers shared by the fine-tuning tests (a module: conftest files are not for importing)."""

from __future__ import annotations

import numpy as np

TINY_CNN = "headstart:tiny-cnn?size=32"
# fast and deterministic: no DataLoader workers, no baseline, no progress bars
FAST = {"num_workers": 0, "baseline": False, "progress": False, "batch_size": 16}


def digit_images(per_class: int) -> tuple[list[np.ndarray], list[str]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.concatenate([np.flatnonzero(d.target == k)[:per_class] for k in range(10)])
    images = (d.images[idx] * (255 / 16)).astype(np.uint8)
    return list(images), [str(t) for t in d.target[idx]]
