"""In-memory data: texts, image arrays, PIL images, image or audio paths, or waveforms, with labels per task."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headstart.data.audio import AUDIO_EXTENSIONS, check_audios, to_waveform
from headstart.data.dataset import MODALITIES, DataIssue, Dataset, Modality
from headstart.data.images import IMAGE_EXTENSIONS, check_images, to_uint8_image
from headstart.data.validate import finish, label_value, text_problem
from headstart.errors import DataError

SOURCE = "in-memory data"
_NAMES = {
    "text": "texts",
    "paths": "image paths",
    "array": "image arrays",
    "pil": "PIL images",
    "audio": "audio paths",
    "waveform": "waveforms",
}


def from_arrays(
    items: Sequence[Any] | np.ndarray,
    labels: Sequence[Any] | np.ndarray | Mapping[str, Sequence[Any]] | None = None,
    *,
    modality: Modality | None = None,
    task: str = "label",
) -> Dataset:
    """A Dataset from data in memory.

    `items`: strings (texts; image file paths with modality="image"), `pathlib.Path`s to image files, image
    arrays (a list, or one N x H x W or N x H x W x 3 array; uint8, or floats in 0..1), or PIL images; for audio,
    paths to audio files (strings with modality="audio") or 1-D waveforms (float32 at the backbone's sample rate).
    `labels`: one label per item for task `task`, or a dict task -> labels for several tasks.
    Items or labels that cannot be used are skipped and listed in `issues` (where = "item #i").
    """
    if modality not in (None, *MODALITIES):
        raise DataError(f"modality must be 'image', 'text' or 'audio', not {modality!r}")
    if isinstance(items, (str, bytes, Mapping)) or not hasattr(items, "__len__") or not hasattr(items, "__iter__"):
        raise DataError(f"{SOURCE}: items must be a list (or an array) of items, got {type(items).__name__}")
    items = list(items)  # an N x H x W (x 3) array becomes a list of N images
    n = len(items)
    if not n:
        raise DataError(f"{SOURCE}: no items")
    targets = _targets(labels, n, task)
    kind = _kind(items, modality)
    where = [f"item #{i}" for i in range(n)]

    problems: list[list[str]] = [[] for _ in range(n)]  # per item; an item with any problem is skipped
    values: list[Any] = [None] * n
    if kind == "text":
        for i, item in enumerate(items):
            values[i], problem = text_problem(item)
            problems[i] += [problem] if problem else []
    elif kind == "array":
        values = [to_uint8_image(item, where[i]) for i, item in enumerate(items)]
    elif kind == "pil":
        values = [_pil_to_array(item) for item in items]
    elif kind == "waveform":
        values = [to_waveform(item, where[i]) for i, item in enumerate(items)]
    else:  # image or audio paths
        audio = kind == "audio"
        values = [Path(item).expanduser().resolve() for item in items]
        for i, path in enumerate(values):
            problem = _path_problem(
                path, AUDIO_EXTENSIONS if audio else IMAGE_EXTENSIONS, "audio" if audio else "image"
            )
            problems[i] += [f"{items[i]}: {problem}"] if problem else []
        ok = [i for i in range(n) if not problems[i]]
        check = check_audios if audio else check_images
        for i, problem in zip(ok, check([values[i] for i in ok]), strict=True):
            problems[i] += [f"{items[i]}: {problem}"] if problem else []

    label_lists: dict[str, list[str | None]] = {name: [] for name in targets}
    for name, raw in targets.items():
        for i, value in enumerate(raw):
            label, problem = label_value(value, name)
            label_lists[name].append(label)
            problems[i] += [problem] if problem else []

    keep = [i for i in range(n) if not problems[i]]
    ds = Dataset(
        modality="text" if kind == "text" else ("audio" if kind in ("audio", "waveform") else "image"),
        items=[values[i] for i in keep],
        targets={name: [column[i] for i in keep] for name, column in label_lists.items()},
        where=[where[i] for i in keep],
        source=SOURCE,
        issues=[DataIssue(where[i], "; ".join(p)) for i, p in enumerate(problems) if p],
    )
    return finish(ds, strict=False)


def _targets(labels: Any, n: int, task: str) -> dict[str, list[Any]]:
    if labels is None:
        return {}
    if isinstance(labels, Mapping):
        targets = {str(name): list(values) for name, values in labels.items()}
    elif isinstance(labels, (str, bytes)):
        raise DataError(f"{SOURCE}: labels must be a list with one label per item, got a string")
    else:
        targets = {task: list(labels)}
    for name, values in targets.items():
        if len(values) != n:
            raise DataError(f"{SOURCE}: {n} items but {len(values)} labels for task {name!r}")
    return targets


def _kind(items: list[Any], modality: Modality | None) -> str:
    """What the items are: "text", "paths", "array" or "pil"; mixed kinds or a modality mismatch are errors."""

    def kind_of(item: Any) -> str:
        if isinstance(item, str):
            return {"image": "paths", "audio": "audio"}.get(modality or "", "text")
        if isinstance(item, os.PathLike):
            return "audio" if modality == "audio" or Path(item).suffix.lower() in AUDIO_EXTENSIONS else "paths"
        if isinstance(item, np.ndarray):
            return "waveform" if modality == "audio" or (item.ndim == 1 and modality is None) else "array"
        if type(item).__module__.startswith("PIL."):
            return "pil"
        if item is None and modality != "image":
            return "text"  # a missing text, reported as an issue
        return type(item).__name__

    kinds = {kind_of(item) for item in items}
    if len(kinds) > 1:
        raise DataError(f"{SOURCE}: the items mix several kinds ({', '.join(sorted(kinds))}); give one kind")
    (kind,) = kinds
    if kind not in _NAMES:
        raise DataError(
            f"{SOURCE}: cannot use items of type {kind}; give strings (texts), image arrays, PIL images, image or "
            "audio paths, or waveforms"
        )
    if modality == "text" and kind != "text":
        raise DataError(f"{SOURCE}: modality 'text' was asked but the items are {_NAMES[kind]}")
    if modality == "image" and kind in ("audio", "waveform"):
        raise DataError(f"{SOURCE}: modality 'image' was asked but the items are {_NAMES[kind]}")
    return kind


def _pil_to_array(image: Any) -> np.ndarray:
    mode = "L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB"
    return np.asarray(image.convert(mode))


def _path_problem(path: Path, extensions: frozenset[str], kind: str) -> str | None:
    if path.suffix.lower() not in extensions:
        return f"not an {kind} file ({path.suffix.lower() or 'no extension'})"
    if not path.is_file():
        return f"{kind} file not found"
    return None
