"""Requests -> items a Predictor takes, checked one by one, so that a bad item is a 4xx naming it, never a 500.

Texts are non-empty strings. Images arrive as encoded files (PNG, JPEG...; base64 in JSON, as KServe sends BYTES)
and become uint8 RGB arrays (EXIF orientation applied, as for image files), or as UINT8 / FP32 (0..1) tensors
`[n, h, w]` or `[n, h, w, 3]`. Audio arrives as encoded files (WAV, FLAC, OGG), kept as temporary files for the
model's own decoding and resampling, or as FP32 tensors `[n, samples]` at the model's sample rate.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from headstart.errors import DataError

INPUT_NAMES = {"text": "text", "image": "image", "audio": "audio"}
TENSOR_TYPES = {"text": ("BYTES",), "image": ("BYTES", "UINT8", "FP32"), "audio": ("BYTES", "FP32")}
MAX_PIXELS = 40_000_000  # a larger image is a decompression bomb here, not a photo
AUDIO_SUFFIXES = {"WAV": ".wav", "FLAC": ".flac", "OGG": ".ogg"}


class InputError(Exception):
    """A request the server cannot answer: `status` is the HTTP code, the message says what and where."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers


class Items:
    """Checked items of one request, and the temporary files behind any of them (removed by `close`)."""

    def __init__(self, values: list[Any], names: list[str], temp: list[Path] | None = None) -> None:
        self.values, self.names, self.temp = values, names, temp or []

    def __len__(self) -> int:
        return len(self.values)

    def close(self) -> None:
        for path in self.temp:
            path.unlink(missing_ok=True)


def check_count(n: int, max_items: int) -> None:
    if n == 0:
        raise InputError(422, "no inputs: give at least one item")
    if n > max_items:
        raise InputError(413, f"{n} items in one request; this server takes at most {max_items} (--max-items)")


def check_text(value: Any, where: str) -> str:
    from headstart.data.validate import text_problem

    if not isinstance(value, str):
        raise InputError(422, f"{where}: expected a string, got {type(value).__name__}")
    text, problem = text_problem(value)
    if problem:
        raise InputError(422, f"{where}: {problem}")
    return text  # type: ignore[return-value]


def decode_image(data: bytes, where: str) -> np.ndarray:
    """An encoded image file as a uint8 RGB array, as `load_image` reads files (EXIF orientation applied)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise InputError(422, f"{where}: empty file (0 bytes)")
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise InputError(413, f"{where}: {im.width} x {im.height} pixels is over {MAX_PIXELS:,}")
            return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except UnidentifiedImageError:
        raise InputError(422, f"{where}: not an image file (PNG, JPEG, ... expected)") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise InputError(422, f"{where}: unreadable image ({exc})") from None


def decode_audio(data: bytes, where: str) -> Path:
    """An encoded audio file, checked, as a temporary file the model decodes (and resamples) itself."""
    import soundfile as sf

    from headstart.data.audio import check_audio

    if not data:
        raise InputError(422, f"{where}: empty file (0 bytes)")
    try:
        fmt = sf.info(io.BytesIO(data)).format
    except Exception:  # libsndfile's errors, or its wrapper's on odd bytes
        raise InputError(422, f"{where}: not an audio file (WAV, FLAC or OGG expected)") from None
    with tempfile.NamedTemporaryFile(suffix=AUDIO_SUFFIXES.get(fmt, ".wav"), delete=False) as f:
        f.write(data)
    path = Path(f.name)
    problem = check_audio(path)
    if problem:
        path.unlink(missing_ok=True)
        raise InputError(422, f"{where}: {problem}")
    return path


def decode_file(data: bytes, modality: str, where: str, temp: list[Path]) -> Any:
    if modality == "image":
        return decode_image(data, where)
    if modality == "audio":
        path = decode_audio(data, where)
        temp.append(path)
        return path
    try:
        return check_text(data.decode("utf-8"), where)
    except UnicodeDecodeError:
        raise InputError(422, f"{where}: not UTF-8 text") from None


def from_files(files: list[tuple[str, bytes]], modality: str, max_items: int) -> Items:
    """Uploaded files (name, bytes) of the model's modality."""
    check_count(len(files), max_items)
    temp: list[Path] = []
    try:
        values = [decode_file(data, modality, f"file {name!r}", temp) for name, data in files]
    except InputError:
        Items([], [], temp).close()
        raise
    return Items(values, [name for name, _ in files], temp)


def from_texts(texts: Any, max_items: int) -> Items:
    if not isinstance(texts, list):
        raise InputError(422, f"'texts' must be a list of strings, got {type(texts).__name__}")
    check_count(len(texts), max_items)
    return Items([check_text(t, f"texts[{i}]") for i, t in enumerate(texts)], [f"#{i}" for i in range(len(texts))])


def from_tensor(tensor: dict[str, Any], modality: str, max_items: int) -> Items:
    """One Open Inference Protocol input tensor (`name`, `shape`, `datatype`, `data`) of the model's modality."""
    name, shape, datatype, data = (tensor.get(k) for k in ("name", "shape", "datatype", "data"))
    expected = INPUT_NAMES[modality]
    if name != expected:
        raise InputError(400, f"unknown input {name!r}: this model's input is {expected!r}")
    if datatype not in TENSOR_TYPES[modality]:
        allowed = ", ".join(TENSOR_TYPES[modality])
        raise InputError(400, f"input {name!r}: datatype {datatype!r} is not one of {allowed} for {modality}")
    if not shape or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise InputError(400, f"input {name!r}: shape must be a list of non-negative integers, got {shape!r}")
    check_count(shape[0], max_items)
    flat = _flatten(data, name)
    if len(flat) != math.prod(shape):
        raise InputError(400, f"input {name!r}: shape {shape} holds {math.prod(shape)} elements, data has {len(flat)}")
    names = [f"#{i}" for i in range(shape[0])]
    if datatype == "BYTES":
        if len(shape) != 1 and not (len(shape) == 2 and shape[1] == 1):
            raise InputError(400, f"input {name!r}: BYTES tensors have shape [n] (or [n, 1]), got {shape}")
        if modality == "text":
            return Items([check_text(v, f"{name}[{i}]") for i, v in enumerate(flat)], names)
        temp: list[Path] = []
        try:
            values = [decode_file(_b64(v, f"{name}[{i}]"), modality, f"{name}[{i}]", temp) for i, v in enumerate(flat)]
        except InputError:
            Items([], [], temp).close()
            raise
        return Items(values, names, temp)
    return Items(_numeric(flat, shape, datatype, modality, name), names)


def _flatten(data: Any, name: str) -> list[Any]:
    if not isinstance(data, list):
        raise InputError(400, f"input {name!r}: 'data' must be a list")
    out: list[Any] = []
    stack = [iter(data)]
    while stack:  # row-major, nested lists allowed as the protocol allows them
        for value in stack[-1]:
            if isinstance(value, list):
                stack.append(iter(value))
                break
            out.append(value)
        else:
            stack.pop()
    return out


def _b64(value: Any, where: str) -> bytes:
    if not isinstance(value, str):
        raise InputError(422, f"{where}: expected a base64 string of the file's bytes, got {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(422, f"{where}: not valid base64") from None


def _numeric(flat: list[Any], shape: list[int], datatype: str, modality: str, name: str) -> list[np.ndarray]:
    ndims = {"image": (3, 4), "audio": (2,)}[modality]
    if len(shape) not in ndims or (modality == "image" and len(shape) == 4 and shape[3] not in (1, 3)):
        want = "[n, h, w] or [n, h, w, 3]" if modality == "image" else "[n, samples]"
        raise InputError(400, f"input {name!r}: {modality} tensors have shape {want}, got {shape}")
    if 0 in shape[1:]:
        raise InputError(422, f"input {name!r}: empty {modality} items (shape {shape})")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in flat):
        raise InputError(422, f"input {name!r}: {datatype} data must be numbers")
    arr = np.asarray(flat, dtype=np.float64).reshape(shape)
    if datatype == "UINT8":
        if arr.size and (arr.min() < 0 or arr.max() > 255 or not np.all(arr == np.round(arr))):
            raise InputError(422, f"input {name!r}: UINT8 data must be whole numbers in 0..255")
        arr = arr.astype(np.uint8)
    else:
        arr = arr.astype(np.float32)
    try:
        if modality == "image":
            from headstart.data.images import to_uint8_image

            return [to_uint8_image(a, f"{name}[{i}]") for i, a in enumerate(arr)]
        from headstart.data.audio import to_waveform

        return [to_waveform(a, f"{name}[{i}]") for i, a in enumerate(arr)]
    except DataError as exc:
        raise InputError(422, str(exc)) from None
