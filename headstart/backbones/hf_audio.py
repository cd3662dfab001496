"""`hf:` audio models: wav2vec2, HuBERT, WavLM (`input_values`) and Whisper's encoder (`input_features`).

The model's own feature extractor (AutoFeatureExtractor) runs in `collate` on the fixed-length windows, so its
sample rate and normalisation are the model's; the encoder's last hidden states are mean-pooled over the frames
that hold the window (Whisper pads every input to 30 s: the padding frames are left out of the mean).
Options: `?window=SECONDS` (default 2.0: the whole clip, centred and zero-padded, for clips up to 2 s), `?trim=1`
(cut leading/trailing silence first; off by default, as on `headstart:speech-embedding`, because it misfires on
noisy recordings) and `?pool=mean|meanmax|meanstd` (default mean).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from headstart.backbones.audio import AudioBackbone, AudioPreprocessing, audio_options
from headstart.backbones.base import BackboneSpec
from headstart.errors import BackboneError


def audio_backbone(spec: BackboneSpec, model: Any, where: str, kwargs: dict, weights_id: str) -> AudioBackbone:
    import transformers

    try:
        extractor = transformers.AutoFeatureExtractor.from_pretrained(where, **kwargs)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BackboneError(f"cannot load the feature extractor of {where!r}: {reason}") from None
    rate = int(getattr(extractor, "sampling_rate", 16_000))
    pre = audio_options(spec.options, AudioPreprocessing(sample_rate=rate, window_s=2.0, trim_silence=False))
    if pre.sample_rate != rate:
        raise BackboneError(f"{spec}: the model expects {rate} Hz audio")
    encoder = model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else model
    name = model.main_input_name
    padded = getattr(extractor, "n_samples", None)  # Whisper: every input is padded to this many samples
    share = min(1.0, pre.num_samples / padded) if padded else 1.0
    return AudioBackbone(
        str(spec),
        encoder,
        embed_dim=int(model.config.hidden_size if hasattr(model.config, "hidden_size") else model.config.d_model),
        weights_id=weights_id,
        preprocessing=pre,
        forward_embed=_Embed(name, share),
        collate=_Extract(extractor, rate, name),
    )


class _Extract:
    """Windows -> the feature extractor's tensors (normalised waveforms, or Whisper's log-mel features)."""

    def __init__(self, extractor: Any, rate: int, name: str) -> None:
        self.extractor, self.rate, self.name = extractor, rate, name

    def __call__(self, waves: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.extractor([w.numpy() for w in waves], sampling_rate=self.rate, return_tensors="pt")
        return {self.name: out[self.name].float()}


class _Embed:
    def __init__(self, name: str, share: float) -> None:
        self.name, self.share = name, share

    def __call__(self, module: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        hidden = module(**{self.name: batch[self.name]}).last_hidden_state
        frames = max(1, math.ceil(hidden.shape[1] * self.share))
        return hidden[:, :frames]  # (B, T, D): pooled by AudioBackbone.embed
