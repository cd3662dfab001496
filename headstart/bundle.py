"""The saved-model format: a folder with `headstart.json` (a manifest anyone can read) and `heads.safetensors`.

No pickle anywhere: the manifest holds the backbone spec, preprocessing, label names, head settings, metrics,
data fingerprint and library versions; tensors live in safetensors. The folder is written beside its final place
and renamed into it, so a crash never leaves a half-written model.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from headstart.errors import BundleError
from headstart.heads import HEADS
from headstart.model import TransferModel

FORMAT = "headstart-bundle"
FORMAT_VERSION = 1
MANIFEST = "headstart.json"
HEAD_WEIGHTS = "heads.safetensors"
BACKBONE_WEIGHTS = "backbone.safetensors"  # only when the backbone itself was trained (fine-tuning)


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


def save_bundle(model: TransferModel, path: str | Path, *, extra_files: dict[str, Path] | None = None) -> Path:
    from safetensors.torch import save_file

    from headstart.paths import atomic_dir

    path = Path(path)
    tensors = {}
    tasks = {}
    for task, head in model.heads.items():
        for name, tensor in head.state_tensors().items():
            tensors[f"{task}/{name}"] = tensor
        tasks[task] = {"head": head.kind, "params": head.fitted_params(), "classes": [str(c) for c in head.classes_]}
        if getattr(head, "chosen_", None):
            tasks[task]["chosen"] = head.chosen_
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "backbone": _backbone_section(model),
        "tasks": tasks,
        "metrics": model.metrics,
        "data": model.data_info,
        "versions": library_versions(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    keep = {p.name: p for p in path.iterdir()} if path.is_dir() else {}
    with atomic_dir(path) as tmp:
        for name, src in keep.items():  # a run folder also holds reports and plots: carry them over
            if name not in (MANIFEST, HEAD_WEIGHTS, BACKBONE_WEIGHTS) and src.is_file():
                (tmp / name).write_bytes(src.read_bytes())
            elif src.is_dir() and not name.startswith("."):  # e.g. a fine-tuning run's checkpoint/ folder
                shutil.copytree(src, tmp / name)
        for name, src in (extra_files or {}).items():
            (tmp / name).write_bytes(Path(src).read_bytes())
        save_file(tensors, str(tmp / HEAD_WEIGHTS))
        if model.tuned_backbone:
            from safetensors.torch import save_model

            save_model(model.backbone.module, str(tmp / BACKBONE_WEIGHTS))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=_jsonable))
    return path


def load_bundle(path: str | Path) -> TransferModel:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    manifest = read_manifest(path)
    if manifest.get("format") != FORMAT:
        raise BundleError(f"{path / MANIFEST}: not a headstart model bundle (format {manifest.get('format')!r})")
    try:
        tensors = load_file(str(path / HEAD_WEIGHTS))
    except FileNotFoundError:
        raise BundleError(f"{path}: {HEAD_WEIGHTS} is missing") from None
    except (SafetensorError, OSError) as exc:
        raise BundleError(f"{path / HEAD_WEIGHTS}: unreadable ({exc})") from None
    heads = {}
    for task, entry in manifest["tasks"].items():
        kind = entry.get("head")
        if kind not in HEADS:
            raise BundleError(f"{path / MANIFEST}: task {task!r} has unknown head {kind!r}")
        state = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.split("/", 1)[0] == task}
        try:
            heads[task] = HEADS[kind].from_state(entry.get("params", {}), entry["classes"], state)
        except (KeyError, RuntimeError, TypeError) as exc:
            raise BundleError(f"{path}: weights of task {task!r} do not match its manifest ({exc})") from None
    backbone = dict(manifest["backbone"])
    spec = backbone.pop("spec")
    tuned = bool(backbone.get("weights"))
    if tuned:  # fine-tuned weights live in this folder: `local:` builds the architecture and loads them
        backbone["architecture"] = spec
        spec = f"local:{path.resolve()}"
    return TransferModel(
        backbone_spec=spec,
        backbone_info=backbone,
        heads=heads,
        metrics=manifest.get("metrics", {}),
        data_info=manifest.get("data", {}),
        tuned_backbone=tuned,
    )


def _backbone_section(model: TransferModel) -> dict[str, Any]:
    """The manifest's backbone section: `spec` names the architecture; `weights` the tuned weights file, if any."""
    info = {k: v for k, v in model.backbone_info.items() if k != "architecture"}
    if not model.tuned_backbone:
        return {**info, "spec": model.backbone_spec, "weights": None}
    return {**info, "spec": model.backbone_info.get("architecture", model.backbone_spec), "weights": BACKBONE_WEIGHTS}


def read_manifest(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise BundleError(f"{path}: no such model folder")
    file = path / MANIFEST
    if not file.is_file():
        raise BundleError(f"{path}: not a headstart model folder (no {MANIFEST})")
    try:
        return json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{file}: not valid JSON ({exc})") from None


def _jsonable(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (np.ndarray, tuple, set)):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
