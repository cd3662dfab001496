"""Turning raw inputs into the exported graph's inputs with numpy, Pillow, tokenizers and soundfile only.

The same steps as the PyTorch backbones' preprocessing (`headstart.backbones`), kept small and separate so that the
runtime never imports torch:
- images: decoded with Pillow (EXIF orientation applied, RGB), the short side resized to size / crop_pct with the
  backbone's interpolation, centre-cropped to size x size, laid out as uint8 N x 3 x H x W (NCHW); scaling and
  normalisation are in the graph. torchvision's resize of uint8 tensors and Pillow's agree to within a grey level or
  so; the export's manifest records the difference measured on the check data.
- text: the backbone's own `tokenizer.json` (Hugging Face tokenizers), truncated to max_length, padded to the
  longest text of the batch; input ids and attention mask as int64.
- audio: decoded with soundfile, mixed to mono, resampled (scipy's polyphase filter, as the PyTorch path does),
  optionally trimmed of leading and trailing silence, fitted to the window (centre kept, zero-padded): float32 N x S.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from headstart.data.audio import fit_window, trim_silence  # numpy only: no torch behind them
from headstart.errors import DataError

MAX_CHANNELS = 8


# -- images ----------------------------------------------------------------------------------------------------------


def load_image(item: Any) -> Any:
    """A path, an image array (H x W, H x W x 3/4; uint8, or floats in 0..1) or a PIL image, as an RGB PIL image."""
    from PIL import Image, ImageOps

    if isinstance(item, (str, os.PathLike)):
        try:
            with Image.open(item) as im:
                return ImageOps.exif_transpose(im).convert("RGB")
        except (OSError, ValueError) as exc:
            raise DataError(f"{item}: cannot read the image ({exc})") from None
    if isinstance(item, Image.Image):
        return item.convert("RGB")
    if isinstance(item, np.ndarray):
        return Image.fromarray(_uint8_image(item)).convert("RGB")
    raise DataError(f"expected an image path, array or PIL image, got {type(item).__name__}")


def _uint8_image(arr: np.ndarray) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim == 3 and arr.shape[-1] == 4:
        arr = arr[..., :3]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[-1] == 3)):
        raise DataError(f"expected an H x W or H x W x 3 image array, got shape {arr.shape}")
    if arr.dtype == np.uint8:
        return arr
    if np.issubdtype(arr.dtype, np.floating):
        if arr.size and (np.nanmin(arr) < 0 or np.nanmax(arr) > 1 or np.isnan(arr).any()):
            raise DataError("float image values must lie in 0..1; pass uint8 arrays for 0..255 data")
        return np.round(arr * 255).astype(np.uint8)
    if np.issubdtype(arr.dtype, np.integer) and (arr.size == 0 or (arr.min() >= 0 and arr.max() <= 255)):
        return arr.astype(np.uint8)
    raise DataError(f"unsupported image array dtype {arr.dtype} (use uint8, or floats in 0..1)")


def prepare_image(item: Any, pre: dict[str, Any]) -> np.ndarray:
    """One item as the graph takes it: uint8 3 x size x size (see the module's doc)."""
    from PIL import Image

    image = load_image(item)
    size = int(pre["size"])
    resize = max(size, int(round(size / float(pre.get("crop_pct", 1.0)))))
    w, h = image.size
    if w <= h:  # torchvision's Resize(int): the short side to `resize`, the long side in proportion, rounded down
        new_w, new_h = resize, int(resize * h / w)
    else:
        new_w, new_h = int(resize * w / h), resize
    modes = {"bilinear": Image.Resampling.BILINEAR, "bicubic": Image.Resampling.BICUBIC}
    modes.update(nearest=Image.Resampling.NEAREST, lanczos=Image.Resampling.LANCZOS)
    if (new_w, new_h) != (w, h):
        image = image.resize((new_w, new_h), modes.get(str(pre.get("interpolation", "bilinear")), modes["bilinear"]))
    top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
    image = image.crop((left, top, left + size, top + size))
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


# -- text ------------------------------------------------------------------------------------------------------------


def text_of(item: Any) -> str:
    """A text item: a string, or the contents of a .txt file named by a path."""
    if isinstance(item, Path) or (
        isinstance(item, str) and len(item) < 4096 and item.endswith(".txt") and Path(item).is_file()
    ):
        return Path(item).read_text(encoding="utf-8")
    if not isinstance(item, str):
        raise DataError(f"a text model needs strings, got {type(item).__name__}")
    return item


class TextEncoder:
    """The exported model's tokenizer, set up as the backbone used it: truncation to max_length, padding to the longest
    text of the batch, optional lower-casing and stripping."""

    def __init__(self, tokenizer_file: Path, settings: dict[str, Any]) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(tokenizer_file))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(int(settings["max_length"]))
        self.tokenizer.enable_padding(
            pad_id=int(settings.get("pad_id", 0)), pad_token=settings.get("pad_token", "[PAD]")
        )
        self.lowercase = bool(settings.get("lowercase", False))
        self.strip = bool(settings.get("strip", False))

    def __call__(self, texts: list[str]) -> dict[str, np.ndarray]:
        texts = [t.strip() if self.strip else t for t in texts]
        texts = [t.lower() if self.lowercase else t for t in texts]
        encodings = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return {"input_ids": ids, "attention_mask": mask}


# -- audio -----------------------------------------------------------------------------------------------------------


def load_waveform(item: Any, sample_rate: int) -> np.ndarray:
    """An audio file (decoded, mixed to mono, resampled) or a waveform array (1-D, or samples x channels; integer PCM
    scaled to [-1, 1]) as mono float32 at `sample_rate` (arrays are taken to be at that rate already)."""
    if isinstance(item, (str, os.PathLike)):
        import soundfile as sf

        try:
            data, rate = sf.read(str(item), dtype="float32", always_2d=True)
        except Exception as exc:  # soundfile raises its own LibsndfileError, RuntimeError, ...
            raise DataError(f"{item}: cannot read the audio ({exc})") from None
        return resample(data.mean(axis=1), int(rate), sample_rate)
    arr = np.asarray(item)
    if arr.ndim == 2 and arr.shape[1] <= MAX_CHANNELS:
        arr = arr.mean(axis=1)
    if arr.ndim != 1 or arr.size == 0:
        raise DataError(f"expected a non-empty 1-D waveform (or samples x channels), got shape {arr.shape}")
    if np.issubdtype(arr.dtype, np.integer):
        return (arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)).astype(np.float32)
    if not np.isfinite(arr).all():
        raise DataError("the waveform contains NaN or infinite values")
    return arr.astype(np.float32)


def resample(wave: np.ndarray, rate: int, target: int) -> np.ndarray:
    if rate == target:
        return np.asarray(wave, dtype=np.float32)
    from scipy.signal import resample_poly  # only for files at another rate; scipy does not import torch

    g = math.gcd(rate, target)
    return resample_poly(wave, target // g, rate // g).astype(np.float32)


def prepare_audio(item: Any, pre: dict[str, Any]) -> np.ndarray:
    rate = int(pre["sample_rate"])
    wave = load_waveform(item, rate)
    if pre.get("trim_silence"):
        wave = trim_silence(wave, rate, float(pre.get("top_db", 40.0)))
    return fit_window(wave, int(round(float(pre["window_s"]) * rate)))
