"""samples:fashion-mnist: Zalando's product photos from the Debian package dataset-fashion-mnist (or a named folder)."""

from __future__ import annotations

import gzip
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from headstart.data import SAMPLES, load_data
from headstart.data.sample_fashion import CLASSES, DEBIAN_FOLDER, IMAGES, LABELS
from headstart.errors import DataError

installed = pytest.mark.skipif(
    not (DEBIAN_FOLDER / IMAGES).is_file(),
    reason="the Debian package dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)",
)


@installed
def test_the_test_set_loads_as_small_grayscale_images_in_ten_balanced_classes() -> None:
    ds = load_data("samples:fashion-mnist")
    assert ds.modality == "image" and ds.source == "samples:fashion-mnist" and ds.issues == []
    assert len(ds) == 10_000
    assert Counter(ds.labels) == {name: 1000 for name in CLASSES}
    # the archive's order: the first test image is an ankle boot, the second a pullover (the data set's README)
    assert ds.labels[:2] == ["ankle-boot", "pullover"] and ds.where[0] == "samples:fashion-mnist #0"
    first = ds.items[0]
    assert first.shape == (28, 28) and first.dtype == np.uint8 and first.flags.writeable
    assert first.max() > 200 and first[0, 0] == 0  # a bright article on a black background
    assert load_data("samples:fashion-mnist").fingerprint() == ds.fingerprint()
    with pytest.raises(DataError, match="samples:fashion-mnist holds image data, not text"):
        load_data("samples:fashion-mnist", modality="text")


def test_missing_files_name_the_folder_and_the_package(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEADSTART_FASHION_MNIST", str(tmp_path))
    expected = (
        r"needs the files t10k-images-idx3-ubyte\.gz and t10k-labels-idx1-ubyte\.gz in "
        r"\$HEADSTART_FASHION_MNIST \(.*\): install the Debian package dataset-fashion-mnist"
    )
    with pytest.raises(DataError, match=expected):
        load_data("samples:fashion-mnist")


@installed
def test_a_damaged_archive_is_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    shutil.copy(DEBIAN_FOLDER / IMAGES, tmp_path / IMAGES)
    (tmp_path / LABELS).write_bytes(gzip.compress(b"\x00\x00\x08\x01" + (10_000).to_bytes(4, "big") + b"\x01" * 10))
    monkeypatch.setenv("HEADSTART_FASHION_MNIST", str(tmp_path))
    with pytest.raises(DataError, match=rf"{LABELS} is not the expected idx file: header \[2049, 10000\], 18 bytes"):
        load_data("samples:fashion-mnist")
    (tmp_path / LABELS).write_bytes(b"not gzip")
    with pytest.raises(DataError, match=rf"{LABELS} is not a readable gzip archive"):
        load_data("samples:fashion-mnist")


def test_described() -> None:
    assert "fashion-mnist" in SAMPLES and "dataset-fashion-mnist" in SAMPLES["fashion-mnist"]
