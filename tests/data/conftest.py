"""Small files for the data-layer tests: real PNG/JPEG images, and damaged ones built from them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def _write_image(path: Path, size: tuple[int, int] = (16, 12), seed: int = 0, fmt: str | None = None) -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(arr).save(path, format=fmt)
    return path


@pytest.fixture
def make_image() -> Callable[..., Path]:
    """make_image(path, size=(w, h), seed=0): write a random RGB image; the format follows the extension."""
    return _write_image


@pytest.fixture
def make_truncated() -> Callable[[Path], Path]:
    """make_truncated(path): write a real image (64 x 64, noisy so it does not compress away), then cut it in half."""

    def make(path: Path) -> Path:
        _write_image(path, size=(64, 64))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path

    return make
