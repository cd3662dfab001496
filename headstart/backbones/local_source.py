"""`local:PATH` — a folder saved by headstart: a backbone (from pretraining or fine-tuning) or a whole bundle.

Both carry `headstart.json` with a `backbone` section: the spec of the architecture it was built from and, when the
weights changed, a `backbone.safetensors` file holding them. Loading never unpickles anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from headstart.backbones.base import Backbone, BackboneSpec, ImageBackbone, ImagePreprocessing, file_weights_id
from headstart.bundle import MANIFEST
from headstart.errors import BackboneError


def load(spec: BackboneSpec) -> Backbone:
    """The folder's backbone. Its trained weights are loaded when the architecture's module is built, which a lazy
    architecture (e.g. `st:`, `hf:`, `timm:`) does on first real use only."""
    from headstart.backbones.registry import create_backbone

    folder = Path(spec.name).expanduser()
    manifest = read_manifest(folder)
    section = manifest.get("backbone")
    if not isinstance(section, dict) or "spec" not in section:
        raise BackboneError(f"{folder / MANIFEST}: no 'backbone' section with a 'spec' field")
    weights = folder / section["weights"] if section.get("weights") else None
    if weights is not None:
        _inside(folder, weights)
        _check_hashes(folder, manifest)
    if str(section["spec"]).startswith("concat:"):
        # pretrained parts as their specs say; the weights are the state of the parts fitted to data (a TF-IDF's),
        # which is all a ConcatBackbone's module holds
        backbone = create_backbone(str(section["spec"]))
    else:
        base_spec = BackboneSpec.parse(section["spec"])
        if base_spec.name.startswith("./"):  # an architecture saved inside the folder (e.g. a tokenizer and config)
            base_spec = BackboneSpec(base_spec.prefix, str(folder / base_spec.name[2:]), base_spec.options)
            _inside(folder, Path(base_spec.name))
        if weights is not None:
            base_spec = BackboneSpec(base_spec.prefix, base_spec.name, {**base_spec.options, "init": "random"})
        backbone = create_backbone(str(base_spec))
    if weights is not None:
        if not weights.is_file():
            raise BackboneError(f"{weights}: weights file named in {MANIFEST} is missing")
        backbone.after_build(lambda module: _load_weights(module, weights))  # now, or when the module is built
        backbone.weights_id = file_weights_id(weights)
        restore_preprocessing(backbone, section.get("preprocessing"))
        for part in getattr(backbone, "parts", []):  # a fitted part's id was taken from its state before loading
            if hasattr(part, "refresh_weights_id"):
                part.refresh_weights_id()
    backbone.spec = f"local:{folder.resolve()}"
    return backbone


def _inside(folder: Path, target: Path) -> None:
    from headstart.bundle import inside

    if not inside(folder, target):
        raise BackboneError(f"{folder / MANIFEST}: {target} is outside the folder; refused")


def _check_hashes(folder: Path, manifest: dict[str, Any]) -> None:
    from headstart.bundle import check_files
    from headstart.errors import BundleError

    try:
        check_files(folder, manifest)
    except BundleError as exc:
        raise BackboneError(str(exc)) from None


def _load_weights(module: Any, weights: Path) -> None:
    from safetensors.torch import load_model

    try:
        load_model(module, str(weights), strict=True, device="cpu")
    except Exception as exc:
        raise BackboneError(f"{weights}: cannot load weights ({str(exc).splitlines()[0][:200]})") from None


def restore_preprocessing(backbone: Backbone, saved: Any) -> None:
    """Trained weights come with the preprocessing they were trained under, which the architecture's random-init
    build may not share (e.g. headstart:efficientnet-lite0's whole-image resize): take the manifest's."""
    if isinstance(backbone, ImageBackbone) and isinstance(saved, dict) and saved.get("kind") == "image":
        fields = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k != "kind"}
        backbone.set_preprocessing(ImagePreprocessing(**fields))
    if isinstance(saved, dict) and saved.get("kind") == "audio" and backbone.modality == "audio":
        from headstart.backbones.audio import AudioPreprocessing

        backbone.set_preprocessing(AudioPreprocessing(**{k: v for k, v in saved.items() if k != "kind"}))  # type: ignore[attr-defined]


def read_manifest(folder: Path) -> dict[str, Any]:
    from headstart import bundle

    return bundle.read_manifest(folder, error=BackboneError)


def backbone_section(backbone: Backbone, *, architecture: str, weights_file: str | None) -> dict[str, Any]:
    """The manifest section that `load` reads back."""
    return {**backbone.describe(), "spec": architecture, "weights": weights_file}


def available() -> list[dict[str, Any]]:
    return [{"spec": "local:PATH", "modality": "any", "offline": True, "note": "a folder saved by headstart"}]
