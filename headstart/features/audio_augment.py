"""Training-time augmentation for audio: on the decoded waveform, under each item's own seed.

Speed/pitch perturbation (resampling by a factor near 1, which changes both, as in Ko et al. 2015), gain, additive
white noise at a random SNR, and a time shift inside the window. Log-mel backbones also get SpecAugment time and
frequency masks, applied by the backbone itself in train mode (`AudioBackbone.spec_augment`); `none` turns them off.

| level  | speed/pitch | gain     | noise (probability, SNR) | shift   | SpecAugment (freq, time masks) |
|--------|-------------|----------|--------------------------|---------|--------------------------------|
| light  | 0.9-1.1x    | +-6 dB   | 0.5, 10-30 dB            | +-0.1 s | 1 x 8 bins, 1 x 10 frames      |
| strong | 0.8-1.2x    | +-10 dB  | 0.8, 0-20 dB             | +-0.2 s | 2 x 12 bins, 2 x 15 frames     |

`PROBE_LEVEL` (no speed change; gain +-6 dB; noise always, 0-20 dB; shift +-0.1 s) makes the augmented copies whose
frozen features a probe's head also trains on (`headstart.features.augmented.training_views`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from headstart.backbones.audio import AudioBackbone, spec_augment_config


@dataclass(frozen=True)
class AudioAugmentLevel:
    speed: tuple[float, float]
    gain_db: float
    noise_p: float
    snr_db: tuple[float, float]
    shift_s: float
    colours: tuple[str, ...] = ("white",)  # the noise's colour, drawn at random among these (data.audio.add_noise)

    def noise_colour(self, rng: np.random.Generator) -> str:
        """One colour among `colours` (no draw when there is one, so a white-only level draws as it always did)."""
        return self.colours[int(rng.integers(len(self.colours)))] if len(self.colours) > 1 else self.colours[0]


LEVELS = {
    "light": AudioAugmentLevel(speed=(0.9, 1.1), gain_db=6.0, noise_p=0.5, snr_db=(10.0, 30.0), shift_s=0.1),
    "strong": AudioAugmentLevel(speed=(0.8, 1.2), gain_db=10.0, noise_p=0.8, snr_db=(0.0, 20.0), shift_s=0.2),
}
PROBE_LEVEL = AudioAugmentLevel(speed=(1.0, 1.0), gain_db=6.0, noise_p=1.0, snr_db=(0.0, 20.0), shift_s=0.1)


class AudioAugment:
    """`(item, seed) -> (num_samples,) tensor`: decode, perturb, window. Picklable (it runs in DataLoader workers)."""

    def __init__(self, backbone: AudioBackbone, level: str | AudioAugmentLevel) -> None:
        self.transform = backbone.transform
        self.level = level if isinstance(level, AudioAugmentLevel) else LEVELS[level]

    def __call__(self, item: Any, seed: int) -> torch.Tensor:
        from headstart.data.audio import add_noise, resample

        lv, rate = self.level, self.transform.pre.sample_rate
        rng = np.random.default_rng(seed)
        wave = self.transform.decode(item)
        factor = rng.uniform(*lv.speed)
        if abs(factor - 1.0) > 0.005:  # played back at `rate`, a clip resampled to rate / factor is factor x faster
            wave = resample(wave, 1000, int(round(1000 / factor)))
        wave = wave * np.float32(10 ** (rng.uniform(-lv.gain_db, lv.gain_db) / 20))
        if rng.random() < lv.noise_p:
            wave = add_noise(wave, rng.uniform(*lv.snr_db), rng, rate, lv.noise_colour(rng))
        window = self.transform.window(wave)
        shift = int(rng.integers(-int(lv.shift_s * rate), int(lv.shift_s * rate) + 1))
        return _shift(window, shift)


def noisy_copy(
    wave: np.ndarray,
    rng: np.random.Generator,
    level: AudioAugmentLevel,
    rate: int,
    talkers: Callable[[np.random.Generator], list[np.ndarray]] | None = None,
) -> np.ndarray:
    """A perturbed copy of a whole decoded recording (before any trimming or windowing, as noise in a real recording
    would be): speed, gain, noise (with probability `noise_p`), then a time shift of the clip inside the backbone's
    centred window, made by zero-padding one end with twice the shift. Where the level's colours hold BABBLE,
    `talkers(rng)` gives the other recordings that make the competing speech."""
    from headstart.data.audio import BABBLE, add_babble, add_noise, resample

    factor = rng.uniform(*level.speed)
    if abs(factor - 1.0) > 0.005:
        wave = resample(wave, 1000, int(round(1000 / factor)))
    wave = wave * np.float32(10 ** (rng.uniform(-level.gain_db, level.gain_db) / 20))
    if rng.random() < level.noise_p:
        snr, colour = rng.uniform(*level.snr_db), level.noise_colour(rng)
        if colour == BABBLE:
            if talkers is None:
                raise ValueError("babble noise needs other recordings (talkers)")
            wave = add_babble(wave, talkers(rng), snr, rng, rate)
        else:
            wave = add_noise(wave, snr, rng, rate, colour)
    shift = int(rng.integers(-int(level.shift_s * rate), int(level.shift_s * rate) + 1))
    pad = np.zeros(2 * abs(shift), np.float32)
    return np.concatenate([pad, wave] if shift > 0 else [wave, pad]).astype(np.float32)


def _shift(x: torch.Tensor, n: int) -> torch.Tensor:
    """Move the samples `n` places later (earlier if negative), filling with silence."""
    if n == 0:
        return x
    out = torch.zeros_like(x)
    if n > 0:
        out[n:] = x[:-n]
    else:
        out[:n] = x[-n:]
    return out


def audio_train_transform(backbone: AudioBackbone, level: str) -> Any:
    """The audio branch of `train_transform`; sets (or clears) the backbone's SpecAugment masks for `level`."""
    masks = backbone.spec_augment
    if masks is not None:
        masks.configure(*spec_augment_config(level))
    if level == "none":
        return None
    return AudioAugment(backbone, level)
