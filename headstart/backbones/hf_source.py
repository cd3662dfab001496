"""`hf:NAME_OR_PATH` — transformers AutoModel with its tokenizer (text, mean pooling), image processor (images) or
feature extractor (audio: wav2vec2, HuBERT, Whisper encoder; see hf_audio)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from headstart.backbones.base import (
    Backbone,
    BackboneSpec,
    ImageBackbone,
    ImagePreprocessing,
    ModuleOrBuilder,
    TextBackbone,
    TextPreprocessing,
    file_weights_id,
    mean_pool,
)
from headstart.errors import BackboneError


def load(spec: BackboneSpec) -> Backbone:
    """A transformers model. Text and image models are built on first real use: their sizes come from the config
    and their preprocessing from the tokenizer settings or image processor, read without the weights."""
    import transformers

    from headstart.backbones.registry import offline

    quiet_transformers()
    where = spec.name
    local = Path(where).exists()
    kwargs = {"local_files_only": offline() or local, "trust_remote_code": False}
    try:
        config = transformers.AutoConfig.from_pretrained(where, **kwargs)
    except Exception as exc:
        raise BackboneError(f"cannot load Hugging Face model {where!r}: {_reason(exc)}") from None
    weights = sorted(Path(where).glob("*.safetensors")) if local else []
    weights_id = "random-seed0" if spec.random_init else (file_weights_id(*weights) if weights else f"hub:{where}")

    def build() -> Any:
        try:
            if spec.random_init:
                torch.manual_seed(0)
                return transformers.AutoModel.from_config(config)
            return transformers.AutoModel.from_pretrained(where, **kwargs)
        except Exception as exc:
            raise BackboneError(f"cannot load Hugging Face model {where!r}: {_reason(exc)}") from None

    main_input = _main_input_name(config)
    if main_input is None or main_input in AUDIO_INPUTS:  # audio models (and unknown ones) are built now
        with torch.random.fork_rng(devices=[]):
            model = build()
        if getattr(model, "main_input_name", "") in AUDIO_INPUTS:
            from headstart.backbones.hf_audio import audio_backbone

            return audio_backbone(spec, model, where, kwargs, weights_id)
        return (
            _image_backbone(spec, model, config, where, kwargs, weights_id)
            if _is_vision(config)
            else (_text_backbone(spec, model, config, where, kwargs, weights_id))
        )
    if _is_vision(config):
        return _image_backbone(spec, build, config, where, kwargs, weights_id)
    return _text_backbone(spec, build, config, where, kwargs, weights_id)


AUDIO_INPUTS = ("input_values", "input_features")


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__


def _main_input_name(config: Any) -> str | None:
    """The input the AutoModel class for `config` takes (`input_ids`, `pixel_values`, `input_values`, ...), read
    from the class without building it; None when the class cannot be told."""
    try:
        from transformers.models.auto.modeling_auto import MODEL_MAPPING

        return str(MODEL_MAPPING[type(config)].main_input_name)
    except Exception:
        return None


def quiet_transformers() -> None:
    """No per-tensor 'Loading weights' bars: headstart shows its own progress where work takes time."""
    import transformers

    transformers.utils.logging.disable_progress_bar()


def random_copy(model: Any) -> Any:
    """A randomly initialised (seeded) transformers model with the same architecture as `model`."""
    import transformers

    torch.manual_seed(0)
    return transformers.AutoModel.from_config(model.config)


def _is_vision(config: Any) -> bool:
    return hasattr(config, "image_size") or hasattr(config, "num_channels")


def _text_backbone(
    spec: BackboneSpec, model: ModuleOrBuilder, config: Any, where: str, kwargs: dict, weights_id: str
) -> TextBackbone:
    import transformers

    def load_tokenizer() -> Any:
        try:
            return transformers.AutoTokenizer.from_pretrained(where, **kwargs)
        except Exception as exc:
            raise BackboneError(f"cannot load the tokenizer of {where!r}: {str(exc).splitlines()[0][:200]}") from None

    limit = getattr(config, "max_position_embeddings", 512)
    max_length = int(spec.options.get("max_length", min(512, limit)))

    def tokenize(texts: list[str]) -> dict[str, torch.Tensor]:
        return dict(
            backbone.tokenizer(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        )

    backbone = TextBackbone(
        str(spec),
        model,
        embed_dim=int(config.hidden_size),
        weights_id=weights_id,
        preprocessing=TextPreprocessing(max_length=max_length),
        tokenize=tokenize,
        forward_embed=_hf_text_embed,
        load_tokenizer=load_tokenizer,  # masked-LM pretraining needs the tokenizer itself
    )
    return backbone


def _hf_text_embed(model: torch.nn.Module, tokens: dict[str, torch.Tensor]) -> torch.Tensor:
    out = model(**tokens)
    return mean_pool(out.last_hidden_state, tokens["attention_mask"])


def _image_backbone(
    spec: BackboneSpec, model: ModuleOrBuilder, config: Any, where: str, kwargs: dict, weights_id: str
) -> ImageBackbone:
    import transformers

    try:
        processor = transformers.AutoImageProcessor.from_pretrained(where, **kwargs)
        size = processor.size
        side = int(size.get("shortest_edge") or size.get("height")) if isinstance(size, dict) else int(size)
        mean, std = tuple(processor.image_mean), tuple(processor.image_std)
    except Exception:
        side = int(getattr(config, "image_size", 224))
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    pre = ImagePreprocessing(size=side, crop_pct=1.0, mean=mean, std=std, interpolation="bilinear")
    hidden = getattr(config, "hidden_size", None) or config.hidden_sizes[-1]
    return ImageBackbone(
        str(spec),
        model,
        embed_dim=int(hidden),
        weights_id=weights_id,
        preprocessing=pre,
        forward_embed=_hf_image_embed,
    )


def _hf_image_embed(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    out = model(pixel_values=images)
    pooled = getattr(out, "pooler_output", None)
    if pooled is not None:
        return pooled.flatten(1)
    hidden = out.last_hidden_state
    return hidden.mean(dim=1) if hidden.dim() == 3 else hidden.mean(dim=(2, 3))


def available() -> list[dict[str, Any]]:
    try:
        from huggingface_hub import scan_cache_dir

        repos = [
            r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model" and not r.repo_id.startswith("timm/")
        ]
    except Exception:
        repos = []
    rows = [{"spec": f"hf:{r}", "modality": "?", "offline": True, "note": "in the Hugging Face cache"} for r in repos]
    rows.append(
        {"spec": "hf:PATH", "modality": "text/image/audio", "offline": True, "note": "a transformers model folder"}
    )
    return rows
