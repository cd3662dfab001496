"""One registry, one factory: `create_backbone("prefix:name")` dispatches on the source prefix to a leaf module.

Each source lives in its own module, imported only when a spec with its prefix is created, so that
`import headstart` never pulls in timm, transformers or sentence-transformers.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from headstart.backbones.base import Backbone, BackboneSpec, ImageBackbone
from headstart.errors import BackboneError, DataError

SOURCES: dict[str, tuple[str, str]] = {
    "timm": (
        "headstart.backbones.timm_source",
        "timm image models; weights from the local Hugging Face cache",
    ),
    "hf": (
        "headstart.backbones.hf_source",
        "transformers AutoModel (text or image) with its tokenizer/processor",
    ),
    "st": ("headstart.backbones.st_source", "sentence-transformers models"),
    "headstart": ("headstart.backbones.shipped", "backbones shipped with headstart or its dependencies"),
    "local": ("headstart.backbones.local_source", "a backbone or bundle saved by headstart (a folder)"),
    "features": ("headstart.backbones.featurizers", "hand-made features (the baselines' own): pixels, log-mel, tfidf"),
}


DEFAULT_BACKBONES = {
    "text": "st:all-MiniLM-L6-v2",
    "image": "headstart:efficientnet-lite0",
    "audio": "headstart:speech-embedding",
}


def default_backbone(modality: str) -> str:
    """The backbone headstart uses for a modality when none is named."""
    return DEFAULT_BACKBONES[modality]


def _concat(spec: str) -> Backbone:
    """`concat:A + B + ...`: the parts' features side by side."""
    from headstart.backbones.featurizers import ConcatBackbone

    names = [s.strip() for s in spec.split(":", 1)[1].split(" + ") if s.strip()]
    if len(names) < 2:
        raise BackboneError(f"{spec!r}: a concat: spec joins two or more backbones, e.g. 'concat:A + B'")
    return ConcatBackbone("concat:" + " + ".join(names), [create_backbone(n) for n in names])


def create_backbone(spec: str) -> Backbone:
    """Build the backbone a spec names, e.g. `timm:resnet18`, `st:all-MiniLM-L6-v2`, `local:runs/digits`."""
    if spec.startswith("concat:"):  # `concat:A + B`: the parts are specs in their own right
        return _concat(spec)
    parsed = BackboneSpec.parse(spec)
    if parsed.prefix not in SOURCES:
        known = ", ".join(f"{p}:" for p in SOURCES)
        raise BackboneError(f"unknown backbone source {parsed.prefix!r} in {spec!r}; known sources: {known}")
    module = importlib.import_module(SOURCES[parsed.prefix][0])
    backbone = module.load(parsed)
    if "size" in parsed.options and isinstance(backbone, ImageBackbone):
        _resize(backbone, int(parsed.options["size"]))
    return backbone


def _resize(backbone: ImageBackbone, size: int) -> None:
    """`?size=N` on any image spec: the backbone's preprocessing works at N pixels (e.g. 64 px for small images)."""
    from dataclasses import replace

    if backbone.image_preprocessing.size != size:
        backbone.set_preprocessing(replace(backbone.image_preprocessing, size=size))


def list_backbones() -> list[dict[str, Any]]:
    """Every backbone headstart knows by name, and whether it can be loaded offline right now."""
    rows: list[dict[str, Any]] = []
    for module_name, _ in SOURCES.values():
        module = importlib.import_module(module_name)
        rows.extend(module.available())
    return rows


def offline() -> bool:
    """True when headstart must not try the network (HEADSTART_OFFLINE=1 or HF_HUB_OFFLINE=1)."""
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes") for v in ("HEADSTART_OFFLINE", "HF_HUB_OFFLINE"))


def check_modality(backbone: Backbone, ds: Any) -> None:
    """One clear error when a dataset's modality is not the one the backbone encodes."""
    if backbone.modality != ds.modality:
        raise DataError(
            f"{ds.source} holds {ds.modality} data but backbone {backbone.spec} encodes {backbone.modality}"
        )
