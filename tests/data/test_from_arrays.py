"""from_arrays: texts, image arrays, PIL images and paths held in memory, with labels for one or more tasks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headstart.data import DataIssue, from_arrays
from headstart.errors import DataError


def test_texts_with_labels() -> None:
    ds = from_arrays(["good film", "bad film", "  ", None], ["pos", "neg", "pos", "neg"])
    assert ds.modality == "text" and ds.source == "in-memory data"
    assert ds.items == ["good film", "bad film"] and ds.labels == ["pos", "neg"]
    assert ds.where == ["item #0", "item #1"]
    assert ds.issues == [DataIssue("item #2", "empty text"), DataIssue("item #3", "missing text")]


def test_labels_as_array_and_as_dict_of_tasks() -> None:
    ds = from_arrays(["a", "b", "c"], np.array([1, 0, 1]))
    assert ds.labels == ["1", "0", "1"] and ds.tasks == ["label"]
    ds = from_arrays(["a", "b", "c"], {"topic": ["x", "y", "x"], "tone": ["+", None, "-"]})
    assert ds.targets == {"topic": ["x", "x"], "tone": ["+", "-"]}
    assert ds.issues == [DataIssue("item #1", "missing label in column 'tone'")]
    assert from_arrays(["a"], task="kind", labels=["z"]).tasks == ["kind"]


def test_lengths_must_match() -> None:
    with pytest.raises(DataError, match="in-memory data: 3 items but 2 labels for task 'label'"):
        from_arrays(["a", "b", "c"], ["x", "y"])
    with pytest.raises(DataError, match="in-memory data: no items"):
        from_arrays([])


def test_stacked_uint8_and_float_arrays() -> None:
    stack = np.zeros((4, 5, 6), dtype=np.uint8)
    ds = from_arrays(stack, [0, 1, 0, 1])
    assert ds.modality == "image" and len(ds) == 4
    assert ds.items[0].shape == (5, 6) and ds.items[0].dtype == np.uint8
    floats = np.full((2, 3, 3, 3), 0.5)
    ds = from_arrays(floats)
    assert ds.items[0].dtype == np.uint8 and int(ds.items[0][0, 0, 0]) == 128
    rgba = [np.full((2, 2, 4), 7, dtype=np.uint8)]
    assert from_arrays(rgba).items[0].shape == (2, 2, 3)
    assert from_arrays([np.arange(4).reshape(2, 2)]).items[0].dtype == np.uint8  # int64 within 0..255


def test_bad_arrays_are_clear_errors() -> None:
    with pytest.raises(DataError, match=r"item #1: float image values must lie in 0\.\.1 \(found 3\.\.3\); scale them"):
        from_arrays([np.zeros((2, 2)), np.full((2, 2), 3.0)])
    with pytest.raises(DataError, match="item #0: the float image array contains NaN values"):
        from_arrays([np.full((2, 2), np.nan)])
    with pytest.raises(DataError, match=r"item #0: expected an H x W or H x W x 3 image array, got shape \(3, 8, 8\)"):
        from_arrays([np.zeros((3, 8, 8), dtype=np.uint8)])
    with pytest.raises(DataError, match=r"integer image values must lie in 0\.\.255 \(found 0\.\.300\)"):
        from_arrays([np.array([[0, 300]])])
    with pytest.raises(DataError, match="unsupported image array dtype bool"):
        from_arrays([np.zeros((2, 2), dtype=bool)])
    with pytest.raises(DataError, match=r"the items mix several kinds \(array, text\)"):
        from_arrays(["a", np.zeros((2, 2))])
    with pytest.raises(DataError, match="modality 'text' was asked but the items are image arrays"):
        from_arrays([np.zeros((2, 2), dtype=np.uint8)], modality="text")


def test_pil_images_become_arrays() -> None:
    from PIL import Image

    ds = from_arrays([Image.new("RGB", (4, 3), (1, 2, 3)), Image.new("L", (4, 3), 9)], ["a", "b"])
    assert ds.items[0].shape == (3, 4, 3) and ds.items[1].shape == (3, 4)
    assert ds.items[0][0, 0].tolist() == [1, 2, 3]


def test_image_paths(tmp_path: Path, make_image, make_truncated) -> None:
    good = make_image(tmp_path / "a.png")
    cut = make_truncated(tmp_path / "b.png")
    ds = from_arrays([good, tmp_path / "gone.png", cut, str(good)], ["x", "y", "x", "y"], modality="image")
    assert ds.items == [good.resolve(), good.resolve()] and ds.labels == ["x", "y"]
    assert ds.where == ["item #0", "item #3"]
    assert ds.issues[0] == DataIssue("item #1", f"{tmp_path / 'gone.png'}: image file not found")
    assert ds.issues[1].where == "item #2" and "corrupt or truncated image" in ds.issues[1].problem
