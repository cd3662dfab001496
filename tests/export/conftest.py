"""Small fitted models to export: a tiny CNN on random images, the tiny sentence-transformers model on toy texts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_texts


def image_arrays(n: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """Three classes of 20 x 24 RGB images told apart by their brightness."""
    rng = np.random.default_rng(seed)
    labels = [["dark", "mid", "light"][i % 3] for i in range(n)]
    base = np.array([40, 128, 215])[[["dark", "mid", "light"].index(y) for y in labels]]
    noise = rng.integers(-40, 41, size=(n, 20, 24, 3))
    return np.clip(base[:, None, None, None] + noise, 0, 255).astype(np.uint8), labels


@pytest.fixture(scope="session")
def image_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import headstart as hs
    from headstart.data import from_arrays

    images, labels = image_arrays(60)
    out = tmp_path_factory.mktemp("export-image") / "model"
    hs.fit(from_arrays(list(images), labels), backbone="headstart:tiny-cnn", out=out, strategy="probe", progress=False,
           baseline=False)  # fmt: skip
    return out


@pytest.fixture(scope="session")
def image_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Labelled held-out images as a folder (one sub-folder per class)."""
    from PIL import Image

    images, labels = image_arrays(30, seed=1)
    root = tmp_path_factory.mktemp("export-image-check") / "check"
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / label / f"{i}.png")
    return root


@pytest.fixture(scope="session")
def text_model(text_model_dir: Path) -> Path:
    return text_model_dir


@pytest.fixture(scope="session")
def text_check(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import csv

    texts, labels = make_texts(24, seed=3)
    path = tmp_path_factory.mktemp("export-text-check") / "check.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))
    return path
