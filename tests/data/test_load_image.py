"""load_image: the RGB PIL image a backbone gets, from a file (EXIF orientation applied) or an array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headstart.data import load_image


def test_from_file(tmp_path: Path, make_image) -> None:
    from PIL import Image

    gray = tmp_path / "g.png"
    Image.new("L", (5, 4), 100).save(gray)
    im = load_image(gray)
    assert im.mode == "RGB" and im.size == (5, 4)
    assert im.getpixel((0, 0)) == (100, 100, 100)
    assert load_image(str(make_image(tmp_path / "c.jpg", size=(7, 3)))).size == (7, 3)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    from PIL import Image

    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to display
    Image.new("RGB", (8, 4), (200, 0, 0)).save(path, exif=exif)
    assert load_image(path).size == (4, 8)


def test_from_arrays() -> None:
    gray = load_image(np.full((3, 4), 9, dtype=np.uint8))
    assert gray.mode == "RGB" and gray.size == (4, 3) and gray.getpixel((0, 0)) == (9, 9, 9)
    rgba = np.zeros((2, 2, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 50, 255
    assert load_image(rgba).getpixel((1, 1)) == (50, 0, 0)
    assert load_image(np.ones((2, 2, 3))).getpixel((0, 0)) == (255, 255, 255)
    with pytest.raises(TypeError, match="expected a path, an image array or a PIL image, got int"):
        load_image(3)
