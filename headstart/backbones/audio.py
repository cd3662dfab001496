"""Audio backbones: waveform preprocessing that travels with the weights, the `AudioBackbone` adapter, and a log-mel
front end with SpecAugment masks written in plain torch (torchaudio does not install beside the pinned torch).

`prepare(item)` decodes a file (or takes a waveform array), mixes it down to mono, resamples to the backbone's rate,
optionally trims leading and trailing silence and fits it to a fixed window; `collate` stacks the windows (or runs a
Hugging Face feature extractor); `embed` maps the batch to (B, D) and stays differentiable for fine-tuning.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from headstart.backbones.base import Backbone


@dataclass(frozen=True)
class AudioPreprocessing:
    """Sample rate, window length and silence trimming: part of the feature-cache key and of every saved bundle."""

    sample_rate: int = 16_000
    window_s: float = 1.0
    trim_silence: bool = True
    top_db: float = 40.0  # trimming keeps frames within top_db of the loudest one

    @property
    def num_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    def to_json(self) -> dict[str, Any]:
        return {"kind": "audio", **asdict(self)}

    def transform(self) -> AudioTransform:
        return AudioTransform(self)


class AudioTransform:
    """Item -> (num_samples,) float32 tensor. Picklable; `decode` and `window` are the two halves, so training
    augmentation can act on the waveform in between."""

    def __init__(self, pre: AudioPreprocessing) -> None:
        self.pre = pre

    def decode(self, item: Any) -> np.ndarray:
        from headstart.data.audio import load_audio, trim_silence

        wave = load_audio(item, self.pre.sample_rate)
        return trim_silence(wave, self.pre.sample_rate, self.pre.top_db) if self.pre.trim_silence else wave

    def window(self, wave: np.ndarray) -> torch.Tensor:
        from headstart.data.audio import fit_window

        return torch.from_numpy(fit_window(wave, self.pre.num_samples))

    def __call__(self, item: Any) -> torch.Tensor:
        return self.window(self.decode(item))


class AudioBackbone(Backbone):
    """An audio encoder: `forward_embed(module, batch)` maps a collated batch (default: (B, N) waveforms) to (B, D)."""

    modality = "audio"

    def __init__(
        self,
        spec: str,
        module: nn.Module,
        *,
        embed_dim: int,
        weights_id: str,
        preprocessing: AudioPreprocessing,
        forward_embed: Callable[[nn.Module, Any], torch.Tensor],
        collate: Callable[[list[torch.Tensor]], Any] | None = None,
    ) -> None:
        super().__init__(spec, module, embed_dim=embed_dim, weights_id=weights_id)
        self.audio_preprocessing = preprocessing
        self.transform = preprocessing.transform()
        self._forward_embed = forward_embed
        self._collate = collate

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.audio_preprocessing.to_json()

    def set_preprocessing(self, preprocessing: AudioPreprocessing) -> None:
        """Use another window, rate or trimming; it becomes part of the cache key and of saved models."""
        self.audio_preprocessing = preprocessing
        self.transform = preprocessing.transform()

    def prepare(self, item: Any) -> torch.Tensor:
        return self.transform(item)

    def collate(self, prepared: Sequence[torch.Tensor]) -> Any:
        return self._collate(list(prepared)) if self._collate is not None else torch.stack(list(prepared))

    def embed(self, batch: Any) -> torch.Tensor:
        return self._forward_embed(self.module, batch)

    def batch_size_of(self, batch: Any) -> int:
        first = batch if isinstance(batch, torch.Tensor) else next(iter(batch.values()))
        return int(first.shape[0])

    @property
    def spec_augment(self) -> SpecAugment | None:
        """The module's SpecAugment masks (log-mel backbones only): active in train mode, off in eval mode."""
        found = getattr(self.module, "spec_augment", None)
        return found if isinstance(found, SpecAugment) else None


def audio_options(spec_options: dict[str, str], default: AudioPreprocessing) -> AudioPreprocessing:
    """`?window=1.5&trim=0` on any audio spec."""
    from dataclasses import replace

    pre = default
    if "window" in spec_options:
        pre = replace(pre, window_s=float(spec_options["window"]))
    if "trim" in spec_options:
        pre = replace(pre, trim_silence=spec_options["trim"].lower() in ("1", "true", "yes"))
    return pre


class LogMel(nn.Module):
    """(B, N) waveforms -> (B, n_mels, frames) log-mel energies: torch.stft (Hann window) and a mel filterbank."""

    def __init__(self, sample_rate: int = 16_000, n_fft: int = 400, hop: int = 160, n_mels: int = 64) -> None:
        super().__init__()
        from headstart.data.audio import mel_filterbank

        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.register_buffer("mel", torch.from_numpy(mel_filterbank(sample_rate, n_fft, n_mels)), persistent=False)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = (
            torch.stft(wave.float(), self.n_fft, self.hop, window=self.window, center=True, return_complex=True).abs()
            ** 2
        )
        return torch.log(torch.matmul(self.mel, spec).clamp(min=1e-5))


class SpecAugment(nn.Module):
    """Time and frequency masking (Park et al. 2019) on (B, F, T) features, in train mode only; off by default."""

    def __init__(self, freq_masks: int = 0, freq_width: int = 8, time_masks: int = 0, time_width: int = 10) -> None:
        super().__init__()
        self.configure(freq_masks, freq_width, time_masks, time_width)

    def configure(self, freq_masks: int, freq_width: int, time_masks: int, time_width: int) -> None:
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or (self.freq_masks == 0 and self.time_masks == 0):
            return x
        b, f, t = x.shape
        keep = torch.ones(b, f, t, dtype=torch.bool, device=x.device)
        for n, width, size, axis in (
            (self.freq_masks, self.freq_width, f, 1),
            (self.time_masks, self.time_width, t, 2),
        ):
            for _ in range(n):
                w = torch.randint(0, width + 1, (b,), device=x.device)
                start = (torch.rand(b, device=x.device) * (size - w).clamp(min=1)).long()
                pos = torch.arange(size, device=x.device)[None, :]
                band = (pos >= start[:, None]) & (pos < (start + w)[:, None])
                keep &= ~(band[:, :, None] if axis == 1 else band[:, None, :])
        fill = x.mean(dim=(1, 2), keepdim=True)
        return torch.where(keep, x, fill)


def spec_augment_config(level: str) -> tuple[int, int, int, int]:
    """(freq_masks, freq_width, time_masks, time_width) per `--augment` level."""
    return {"none": (0, 0, 0, 0), "light": (1, 8, 1, 10), "strong": (2, 12, 2, 15)}[level]
