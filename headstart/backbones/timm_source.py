"""`timm:NAME` — timm image models, pretrained weights read from the local Hugging Face cache."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from headstart.backbones.base import (
    BackboneSpec,
    ImageBackbone,
    ImagePreprocessing,
    ModuleOrBuilder,
    file_weights_id,
)
from headstart.errors import BackboneError

RANDOM_SEED = 0


def load(spec: BackboneSpec) -> ImageBackbone:
    """A timm model, built on first real use: its preprocessing and sizes come from the architecture instantiated on
    the meta device (no memory, no initialisation), its weights are identified by their file."""
    import timm

    if not timm.is_model(spec.name):
        close = timm.list_models(f"*{spec.name.split('.')[0]}*")[:8]
        hint = f"; similar names: {', '.join(close)}" if close else ""
        raise BackboneError(f"timm has no model named {spec.name!r}{hint}")
    if spec.random_init:
        weights_id = f"random-seed{RANDOM_SEED}"

        def build() -> torch.nn.Module:
            torch.manual_seed(RANDOM_SEED)
            return timm.create_model(spec.name, pretrained=False)
    else:
        weights_file = cached_weights_file(spec)
        weights_id = file_weights_id(weights_file)

        def build() -> torch.nn.Module:
            return timm.create_model(spec.name, pretrained=True, pretrained_cfg_overlay={"file": weights_file})

    return lazy_timm_backbone(str(spec), spec.name, build, weights_id, has_source_head=not spec.random_init)


def lazy_timm_backbone(
    spec: str, name: str, build: Callable[[], torch.nn.Module], weights_id: str, *, has_source_head: bool
) -> ImageBackbone:
    """`wrap_timm_model` for a model not built yet: the facts come from `name`'s architecture on the meta device
    (or, for an architecture that cannot be built there, from a real build, which then serves as the module)."""
    import timm

    try:
        with torch.device("meta"):
            template = timm.create_model(name, pretrained=False)
    except Exception:  # e.g. an architecture that reads tensor values while it is built
        with torch.random.fork_rng(devices=[]):
            return wrap_timm_model(spec, build(), weights_id, has_source_head=has_source_head)
    facts = timm_facts(template, has_source_head=has_source_head)

    def checked() -> torch.nn.Module:
        model = build()
        if timm_facts(model, has_source_head=has_source_head) != facts:
            raise BackboneError(f"{spec}: the built model differs from its architecture's description")
        return model

    return _timm_backbone(spec, checked, weights_id, facts)


def timm_facts(model: torch.nn.Module, *, has_source_head: bool) -> tuple[ImagePreprocessing, int, bool]:
    """A timm model's preprocessing, embedding size and whether its classifier serves as source head."""
    import timm

    cfg = timm.data.resolve_data_config({}, model=model)
    pre = ImagePreprocessing(
        size=int(cfg["input_size"][-1]),
        crop_pct=float(cfg.get("crop_pct", 0.875)),
        mean=tuple(float(v) for v in cfg["mean"]),
        std=tuple(float(v) for v in cfg["std"]),
        interpolation=str(cfg.get("interpolation", "bicubic")),
    )
    embed_dim = int(getattr(model, "head_hidden_size", None) or model.num_features)
    return pre, embed_dim, bool(has_source_head and getattr(model, "num_classes", 0))


def wrap_timm_model(spec: str, model: torch.nn.Module, weights_id: str, *, has_source_head: bool) -> ImageBackbone:
    """Turn a timm model into a backbone: pooled pre-logits features as embeddings, its classifier as source head."""
    return _timm_backbone(spec, model, weights_id, timm_facts(model, has_source_head=has_source_head))


def _timm_backbone(
    spec: str, module: ModuleOrBuilder, weights_id: str, facts: tuple[ImagePreprocessing, int, bool]
) -> ImageBackbone:
    pre, embed_dim, logits = facts
    return ImageBackbone(
        spec,
        module,
        embed_dim=embed_dim,
        weights_id=weights_id,
        preprocessing=pre,
        forward_embed=_timm_embed,
        forward_logits=_timm_logits if logits else None,
        logits_of_features=_timm_classify,
    )


def _timm_embed(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    return model.forward_head(model.forward_features(images), pre_logits=True)


def _timm_logits(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    return model(images)


def _timm_classify(model: torch.nn.Module, pre_logits: torch.Tensor) -> torch.Tensor:
    """timm's contract: `model(x) == model.get_classifier()(model.forward_head(features, pre_logits=True))` in eval
    mode, and the embeddings are those pre-logits (`_timm_embed`)."""
    return model.get_classifier()(pre_logits)


def cached_weights_file(spec: BackboneSpec) -> str:
    """The local file holding a timm model's pretrained weights; downloads only when allowed, with a time limit."""
    import timm
    from huggingface_hub import try_to_load_from_cache

    from headstart.backbones.registry import offline

    cfg = timm.models.get_pretrained_cfg(spec.name)
    repo = getattr(cfg, "hf_hub_id", None) if cfg is not None else None
    if not repo:
        raise BackboneError(f"timm:{spec.name} has no pretrained weights on record; use timm:{spec.name}?init=random")
    for filename in ("model.safetensors", "pytorch_model.bin"):
        path = try_to_load_from_cache(repo, filename)
        if isinstance(path, str):
            return path
    hint = (
        f"put them in the Hugging Face cache (e.g. `hf download {repo}` on a machine with internet, then copy "
        f"~/.cache/huggingface), or use timm:{spec.name}?init=random for random initialisation"
    )
    if offline():
        raise BackboneError(
            f"pretrained weights for timm:{spec.name} ({repo}) are not cached and downloads are off; {hint}"
        )
    if not hub_reachable():
        raise BackboneError(
            f"pretrained weights for timm:{spec.name} ({repo}) are not cached and the Hugging Face Hub cannot be "
            f"reached; {hint}"
        )
    try:
        from huggingface_hub import hf_hub_download

        return hf_hub_download(repo, "model.safetensors", etag_timeout=10)
    except Exception as exc:  # network errors come in many types; each ends the same way for the user
        reason = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise BackboneError(
            f"pretrained weights for timm:{spec.name} ({repo}) are not cached and could not be "
            f"downloaded ({reason}); {hint}"
        ) from None


def hub_reachable(timeout: float = 3.0) -> bool:
    """One quick TCP connection to the Hub, so an offline machine fails in seconds instead of retrying for minutes."""
    import socket
    from urllib.parse import urlparse

    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def available() -> list[dict[str, Any]]:
    """timm models whose pretrained weights are in the local cache."""
    try:
        from huggingface_hub import scan_cache_dir

        repos = [r.repo_id for r in scan_cache_dir().repos if r.repo_id.startswith("timm/")]
    except Exception:
        repos = []
    rows = [
        {
            "spec": f"timm:{r.removeprefix('timm/')}",
            "modality": "image",
            "offline": True,
            "note": "cached weights",
        }
        for r in sorted(repos)
    ]
    rows.append(
        {
            "spec": "timm:NAME?init=random",
            "modality": "image",
            "offline": True,
            "note": "any timm architecture, random init",
        }
    )
    return rows
