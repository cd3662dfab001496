"""Audio backbones: waveform preprocessing that travels with the weights, the `AudioBackbone` adapter, and a log-mel
front end with SpecAugment masks written in plain torch (torchaudio does not install beside the pinned torch).

`prepare(item)` decodes a file (or takes a waveform array), mixes it down to mono, resamples to the backbone's rate,
optionally trims leading and trailing silence and fits it to a fixed window (centred, zero-padded); `collate` stacks
the windows (or runs a Hugging Face feature extractor); `embed` maps the batch to frame embeddings (B, T, D) and pools
them over time to (B, D), (B, 2D) for `meanmax` / `meanstd`; it stays differentiable for fine-tuning.

Pooling leaves out the frames that see only the window's zero padding (when the backbone can tell which those are),
so a short clip in a generous window is described by its own frames, not diluted by silence it never had.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from headstart.backbones.base import Backbone
from headstart.errors import BackboneError

POOLS = {"mean": 1, "meanmax": 2, "meanstd": 2}  # pooling over time -> multiple of the frame dimension


@dataclass(frozen=True)
class AudioPreprocessing:
    """Sample rate, window length, silence trimming and pooling over time: part of the feature-cache key and of every
    saved bundle. The field defaults are the original behaviour (what a bundle saved before `pool` existed meant);
    each backbone passes its own defaults (`headstart:speech-embedding`: 2 s window, no trimming, mean+max)."""

    sample_rate: int = 16_000
    window_s: float = 1.0
    trim_silence: bool = True
    top_db: float = 40.0  # trimming keeps frames within top_db of the loudest one
    pool: str = "mean"  # mean, meanmax (mean and max concatenated) or meanstd (statistics pooling)

    def __post_init__(self) -> None:
        if self.pool not in POOLS:
            raise BackboneError(f"audio pooling must be one of {', '.join(POOLS)}, not {self.pool!r}")
        if not self.window_s > 0:
            raise BackboneError(f"the audio window must be a positive number of seconds, not {self.window_s!r}")

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
    """An audio encoder: `forward_embed(module, batch)` maps a collated batch (default: (B, N) waveforms) to frame
    embeddings (B, T, D), or to `(frames, mask)` with a (B, T) boolean mask of the frames that hold audio; `embed`
    pools them over time as the preprocessing's `pool` says. `embed_dim` is the pooled width; `frame_dim` is D."""

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
        super().__init__(spec, module, embed_dim=embed_dim * POOLS[preprocessing.pool], weights_id=weights_id)
        self.frame_dim = embed_dim
        self.audio_preprocessing = preprocessing
        self.transform = preprocessing.transform()
        self._forward_embed = forward_embed
        self._collate = collate

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.audio_preprocessing.to_json()

    def set_preprocessing(self, preprocessing: AudioPreprocessing) -> None:
        """Use another window, rate, trimming or pooling; it becomes part of the cache key and of saved models."""
        self.audio_preprocessing = preprocessing
        self.transform = preprocessing.transform()
        self.embed_dim = self.frame_dim * POOLS[preprocessing.pool]

    def prepare(self, item: Any) -> torch.Tensor:
        return self.transform(item)

    def collate(self, prepared: Sequence[torch.Tensor]) -> Any:
        return self._collate(list(prepared)) if self._collate is not None else torch.stack(list(prepared))

    def embed(self, batch: Any) -> torch.Tensor:
        out = self._forward_embed(self.module, batch)
        frames, mask = out if isinstance(out, tuple) else (out, None)
        return pool_frames(frames, self.audio_preprocessing.pool, mask)

    def batch_size_of(self, batch: Any) -> int:
        first = batch if isinstance(batch, torch.Tensor) else next(iter(batch.values()))
        return int(first.shape[0])

    @property
    def spec_augment(self) -> SpecAugment | None:
        """The module's SpecAugment masks (log-mel backbones only): active in train mode, off in eval mode."""
        found = getattr(self.module, "spec_augment", None)
        return found if isinstance(found, SpecAugment) else None


def pool_frames(frames: torch.Tensor, how: str, mask: torch.Tensor | None = None) -> torch.Tensor:
    """(B, T, D) frame embeddings -> (B, D) mean, or (B, 2D) mean+max / mean+std, over the frames where `mask` (B, T)
    is true (every frame when it is None; a row whose mask is all false uses every frame)."""
    if frames.dim() == 2:  # already one vector per clip
        return frames
    if mask is None:
        weights = frames.new_ones(frames.shape[:2])
    else:
        weights = mask.to(frames.dtype)
        weights = torch.where(weights.sum(dim=1, keepdim=True) > 0, weights, torch.ones_like(weights))
    w = weights.unsqueeze(-1)
    count = w.sum(dim=1)
    mean = (frames * w).sum(dim=1) / count
    if how == "mean":
        return mean
    if how == "meanmax":
        lowest = torch.finfo(frames.dtype).min
        return torch.cat([mean, torch.where(w > 0, frames, torch.full_like(frames, lowest)).amax(dim=1)], dim=1)
    if how == "meanstd":
        var = (((frames - mean.unsqueeze(1)) ** 2) * w).sum(dim=1) / count
        return torch.cat([mean, torch.sqrt(var + 1e-6)], dim=1)
    raise BackboneError(f"audio pooling must be one of {', '.join(POOLS)}, not {how!r}")


def audio_options(spec_options: dict[str, str], default: AudioPreprocessing) -> AudioPreprocessing:
    """`?window=2&trim=0&pool=meanmax` on any audio spec (`?trim=1&window=1&pool=mean`: the original defaults)."""
    from dataclasses import replace

    pre = default
    if "window" in spec_options:
        try:
            window = float(spec_options["window"])
        except ValueError:
            raise BackboneError(f"?window= takes seconds (e.g. 2), not {spec_options['window']!r}") from None
        pre = replace(pre, window_s=window)
    if "trim" in spec_options:
        pre = replace(pre, trim_silence=spec_options["trim"].lower() in ("1", "true", "yes"))
    if "pool" in spec_options:
        how = "".join(ch for ch in spec_options["pool"].lower() if ch.isalpha())  # "mean+max" reads as "mean max"
        pre = replace(pre, pool=how)
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
