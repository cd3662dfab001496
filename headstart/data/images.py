"""Images: full-decode checks for files, array normalisation, and `load_image` for DataLoader workers.

PIL is imported inside the functions so that `import headstart.data` stays light.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headstart.errors import DataError

if TYPE_CHECKING:
    from PIL import Image

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})


def check_image(path: Path) -> str | None:
    """Open and fully decode one image file; return what is wrong with it, or None if it is usable.

    A full `load()` (not `verify()`) is what catches truncated PNG and JPEG files; PIL's
    `ImageFile.LOAD_TRUNCATED_IMAGES` is left False on purpose.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        size = path.stat().st_size
        if size == 0:
            return "empty file (0 bytes)"
        with Image.open(path) as im:
            im.load()
    except UnidentifiedImageError:
        return "not an image file (PIL cannot identify its format)"
    except Image.DecompressionBombError as e:
        return f"image too large to decode safely ({e})"
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        return f"cannot read the file ({e.strerror})"
    except OSError as e:
        reason = str(e) if "truncated" in str(e) else f"{type(e).__name__}: {e}"
        return f"corrupt or truncated image ({reason})"
    except Exception as e:  # PIL raises SyntaxError, ValueError, struct.error ... for damaged files
        return f"corrupt image ({type(e).__name__}: {e})"
    return None


def check_images(paths: Sequence[Path]) -> list[str | None]:
    """`check_image` over many files, decoded in threads (PIL releases the GIL while decoding)."""
    if len(paths) < 16:
        return [check_image(p) for p in paths]
    workers = min(8, (os.cpu_count() or 1) + 2)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(check_image, paths, chunksize=16))


def to_uint8_image(arr: Any, where: str = "image") -> np.ndarray:
    """An image array as uint8, H x W (grayscale) or H x W x 3 (RGB).

    Accepts uint8, integers within 0..255, and floats within 0..1 (scaled by 255); H x W x 1 is squeezed and
    an alpha channel (H x W x 4) dropped. Anything else raises a DataError that says what was found.
    """
    arr = np.asarray(arr)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        hint = ""
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
            hint = "; it looks channel-first, move the channels last (arr.transpose(1, 2, 0))"
        raise DataError(f"{where}: expected an H x W or H x W x 3 image array, got shape {arr.shape}{hint}")
    if arr.dtype == np.uint8:
        return arr
    if arr.size and np.issubdtype(arr.dtype, np.floating):
        if np.isnan(arr).any():
            raise DataError(f"{where}: the float image array contains NaN values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < 0.0 or hi > 1.0:
            raise DataError(
                f"{where}: float image values must lie in 0..1 (found {lo:g}..{hi:g}); "
                "scale them, or pass uint8 arrays for 0..255 data"
            )
        return np.round(arr * 255.0).astype(np.uint8)
    if arr.size and np.issubdtype(arr.dtype, np.integer) and arr.dtype != np.bool_:
        lo, hi = int(arr.min()), int(arr.max())
        if lo < 0 or hi > 255:
            raise DataError(f"{where}: integer image values must lie in 0..255 (found {lo}..{hi})")
        return arr.astype(np.uint8)
    raise DataError(f"{where}: unsupported image array dtype {arr.dtype}; use uint8 (0..255) or float (0..1)")


def load_image(item: Path | str | np.ndarray | Image.Image) -> Image.Image:
    """One dataset item as an RGB PIL image: a file path (EXIF orientation applied) or an image array.

    A plain top-level function, so that DataLoader workers can pickle it.
    """
    from PIL import Image, ImageOps

    if isinstance(item, (str, os.PathLike)):
        with Image.open(item) as im:
            return ImageOps.exif_transpose(im).convert("RGB")
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        return Image.fromarray(to_uint8_image(item)).convert("RGB")
    raise TypeError(f"load_image: expected a path, an image array or a PIL image, got {type(item).__name__}")
