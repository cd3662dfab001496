"""`samples:fashion-mnist`: Zalando's product photos (Fashion-MNIST's test set), from the Debian package.

Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017): photos of Zalando's clothing articles, cut to the article, scaled to
28 x 28 px, 8-bit grayscale, in 10 classes. The sample is the data set's official test set of 10,000 images,
1,000 per class: real product photos, small ones, far enough from ImageNet's (centred, grey, low resolution) that
a frozen ImageNet backbone is no sure win; the training set's 60,000 stay out to keep caches small.

The files are the idx archives of the Debian package `dataset-fashion-mnist` (`apt-get install
dataset-fashion-mnist`, in `/usr/share/datasets/fashion-mnist`), or of the folder named by the environment
variable HEADSTART_FASHION_MNIST (the same four files as the project's own download). Data licence: MIT.
"""

from __future__ import annotations

import gzip
import math
import os
from pathlib import Path

from headstart.data.dataset import Dataset
from headstart.errors import DataError

SOURCE = "samples:fashion-mnist"
DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
FOLDER_VARIABLE = "HEADSTART_FASHION_MNIST"
IMAGES = "t10k-images-idx3-ubyte.gz"
LABELS = "t10k-labels-idx1-ubyte.gz"
# the data set's label index -> class name, as its README names them
CLASSES = ("t-shirt-top", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")
N_ITEMS = 10_000
SIDE = 28


def data_folder() -> Path:
    """The folder holding the idx archives: $HEADSTART_FASHION_MNIST, else the Debian package's."""
    named = os.environ.get(FOLDER_VARIABLE)
    folder = Path(named) if named else DEBIAN_FOLDER
    if not (folder / IMAGES).is_file() or not (folder / LABELS).is_file():
        where = f"${FOLDER_VARIABLE} ({folder})" if named else str(folder)
        raise DataError(
            f"{SOURCE} needs the files {IMAGES} and {LABELS} in {where}: install the Debian package "
            f"dataset-fashion-mnist (apt-get install dataset-fashion-mnist), or set {FOLDER_VARIABLE} to a folder "
            "that holds them"
        )
    return folder


def _read_idx(path: Path, magic: int, shape: tuple[int, ...]) -> bytes:
    """The payload of an idx archive after checking its header (magic number and dimensions)."""
    try:
        raw = gzip.decompress(path.read_bytes())
    except (OSError, EOFError) as error:
        raise DataError(f"{SOURCE}: {path} is not a readable gzip archive ({error})") from None
    header_len = 4 + 4 * len(shape)
    header = [int.from_bytes(raw[i : i + 4], "big") for i in range(0, header_len, 4)]
    if header != [magic, *shape] or len(raw) != header_len + math.prod(shape):
        raise DataError(f"{SOURCE}: {path} is not the expected idx file: header {header}, {len(raw)} bytes")
    return raw[header_len:]


def load_fashion_mnist() -> Dataset:
    """The 10,000 test images as 28 x 28 uint8 arrays, in the archive's order, label = the class name."""
    import numpy as np

    folder = data_folder()
    pixels = _read_idx(folder / IMAGES, 0x803, (N_ITEMS, SIDE, SIDE))
    codes = _read_idx(folder / LABELS, 0x801, (N_ITEMS,))
    images = np.frombuffer(pixels, dtype=np.uint8).reshape(N_ITEMS, SIDE, SIDE).copy()
    labels = np.frombuffer(codes, dtype=np.uint8)
    if labels.max() >= len(CLASSES):
        raise DataError(f"{SOURCE}: {folder / LABELS} holds label {int(labels.max())}; the classes are 0..9")
    return Dataset(
        modality="image",
        items=list(images),
        targets={"label": [CLASSES[c] for c in labels]},
        where=[f"{SOURCE} #{i}" for i in range(N_ITEMS)],
        source=SOURCE,
    )
