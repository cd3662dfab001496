"""The folder format that headstart saves, alone: a manifest anyone can read (`headstart.json`) plus safetensors.

Two kinds of folder share it: a model bundle (heads, and the backbone's weights when they were trained) and a
backbone saved by pretraining. No pickle anywhere: the manifest holds the backbone spec, preprocessing, label names,
head settings, metrics, data fingerprint and library versions; tensors live in safetensors. A folder is written
beside its final place and renamed into it, so a crash never leaves a half-written one. This module knows nothing
of models or heads (`headstart.model` builds those from what it reads), so every layer can share it.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from headstart.errors import BundleError

FORMAT = "headstart-bundle"
FORMAT_VERSION = 2  # 2: the manifest lists its weight files with their SHA-256 (`files`), checked on load
BACKBONE_FORMAT = "headstart-backbone"  # a pretrained backbone folder (no heads)
MANIFEST = "headstart.json"
HEAD_WEIGHTS = "heads.safetensors"
BACKBONE_WEIGHTS = "backbone.safetensors"  # only when the backbone itself was trained (fine-tuning, pretraining)
BACKBONE_DIR = "backbone"  # a `local:` backbone the model was fitted on, copied in so the folder stands alone
OWN_FILES = (MANIFEST, HEAD_WEIGHTS, BACKBONE_WEIGHTS)

_NAME = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$", "not": {"enum": [".", ".."]}}  # a file in the folder
SCHEMA: dict[str, Any] = {  # a model bundle's manifest; extra keys are allowed (newer writers may add some)
    "type": "object",
    "required": ["format", "backbone", "tasks"],
    "properties": {
        "format": {"const": FORMAT},
        "format_version": {"type": "integer", "minimum": 1},
        "backbone": {
            "type": "object",
            "required": ["spec"],
            "properties": {"spec": {"type": "string", "minLength": 1}, "weights": {"anyOf": [_NAME, {"type": "null"}]}},
        },
        "tasks": {
            "type": "object",
            "minProperties": 1,
            "additionalProperties": {
                "type": "object",
                "required": ["head", "classes"],
                "properties": {
                    "head": {"type": "string"},
                    "classes": {"type": "array", "minItems": 1, "items": {"type": "string"}},
                    "params": {"type": "object"},
                },
            },
        },
        "metrics": {"type": "object"},
        "data": {"type": "object"},
        "files": {
            "type": "object",
            "propertyNames": _NAME,
            "additionalProperties": {"type": "string", "pattern": "^sha256:[0-9a-f]{64}$"},
        },
    },
}

LIBRARIES = (
    "headstart",
    "torch",
    "torchvision",
    "timm",
    "transformers",
    "sentence-transformers",
    "scikit-learn",
    "lightning",
    "peft",
)


def library_versions() -> dict[str, str]:
    """Versions of the libraries a saved model or backbone was made with (those installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def write_folder(
    path: str | Path,
    manifest: dict[str, Any],
    *,
    tensors: dict[str, Any] | None = None,
    backbone_module: Any = None,
    extra_files: dict[str, Path] | None = None,
    more: Callable[[Path], None] | None = None,
) -> Path:
    """Write (or rewrite) the folder atomically: files already there that are not the format's own (reports, plots,
    a checkpoint/ folder) are carried over; `tensors` go to heads.safetensors, `backbone_module`'s weights to
    backbone.safetensors; `more(tmp)` may add files before the rename."""
    from safetensors.torch import save_file, save_model

    from headstart.paths import atomic_dir

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = {p.name: p for p in path.iterdir()} if path.is_dir() else {}
    with atomic_dir(path) as tmp:
        for name, src in keep.items():
            if name not in OWN_FILES and src.is_file():
                (tmp / name).write_bytes(src.read_bytes())
            elif src.is_dir() and not name.startswith("."):
                shutil.copytree(src, tmp / name)
        for name, src in (extra_files or {}).items():
            (tmp / name).write_bytes(Path(src).read_bytes())
        if tensors is not None:
            save_file(tensors, str(tmp / HEAD_WEIGHTS))
        if backbone_module is not None:
            save_model(backbone_module, str(tmp / BACKBONE_WEIGHTS))
        if more is not None:
            more(tmp)
        hashes = {name: file_hash(tmp / name) for name in (HEAD_WEIGHTS, BACKBONE_WEIGHTS) if (tmp / name).is_file()}
        (tmp / MANIFEST).write_text(json.dumps({**manifest, "files": hashes}, indent=2, default=jsonable))
    return path


def file_hash(path: Path) -> str:
    """`sha256:<hex>` of a file's bytes, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def check_files(path: Path, manifest: dict[str, Any]) -> None:
    """Every weight file the manifest lists has the bytes it had when saved (a bundle of format 1 lists none)."""
    for name, expected in (manifest.get("files") or {}).items():
        file = path / name
        if not file.is_file():
            raise BundleError(f"{path}: {name} is missing (the manifest lists it)")
        if file_hash(file) != expected:
            raise BundleError(f"{file}: its SHA-256 is not the one in {MANIFEST}: the file changed after saving")
    if manifest.get("format_version", 1) >= 2:
        for name in (HEAD_WEIGHTS, BACKBONE_WEIGHTS):
            if (path / name).is_file() and name not in (manifest.get("files") or {}):
                raise BundleError(f"{path / MANIFEST}: {name} has no hash under 'files'")


def inside(folder: Path, target: Path) -> bool:
    """Whether `target` resolves to a place inside `folder` (symbolic links and `..` followed)."""
    return target.resolve().is_relative_to(folder.resolve())


def read_manifest(path: str | Path, *, error: type[Exception] = BundleError) -> dict[str, Any]:
    """The folder's manifest; `error` (a HeadstartError) names the folder and what is wrong."""
    path = Path(path)
    if not path.is_dir():
        raise error(f"{path}: no such folder")
    file = path / MANIFEST
    if not file.is_file():
        raise error(f"{path}: not a headstart folder (no {MANIFEST})")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict):
        raise error(f"{file}: not a headstart manifest (a JSON object is expected)")
    return manifest


def read_bundle(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """A model bundle's manifest and head tensors, checked to be a bundle whose weights file reads."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.exists():
        raise BundleError(f"{path}: no such model folder")
    manifest = read_manifest(path)
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path / MANIFEST}: not a headstart model bundle (format {manifest.get('format')!r})")
    check_schema(path / MANIFEST, manifest)
    check_files(path, manifest)
    try:
        tensors = load_file(str(path / HEAD_WEIGHTS))
    except FileNotFoundError:
        raise BundleError(f"{path}: {HEAD_WEIGHTS} is missing") from None
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"{path / HEAD_WEIGHTS}: unreadable ({exc})") from None
    return manifest, tensors


def check_schema(file: Path, manifest: dict[str, Any]) -> None:
    """The manifest against SCHEMA; the first problem named by its place in the file."""
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(SCHEMA).iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "the top level"
        raise BundleError(f"{file}: {where}: {errors[0].message}")


def jsonable(value: Any) -> Any:
    """`json.dumps(default=...)` for numpy scalars and arrays, tuples, sets and paths."""
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
