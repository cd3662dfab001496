"""Augmented training views for a probe: features of perturbed copies of every training item, so that a head fitted on
frozen features sees the nuisances (noise, level, timing) it will meet at test time, not only clean clips.

Audio: each copy of a clip gets white noise at a random SNR (0-20 dB, below its active speech level), a random gain
(+-6 dB) and a small time shift inside the backbone's window (+-0.1 s), from `headstart.features.audio_augment`
(`PROBE_LEVEL`, `noisy_copy`), seeded by (seed, copy, the clip's samples): a clip's copies are the same in whichever
subset it sits (each fold of `auto`, the split, the refit on every label), so the feature cache serves them after
their first extraction (babble copies also draw other talkers of the subset, so theirs change with it). Noise goes
onto the whole decoded recording before the backbone's own preprocessing (trimming, if on, and the window), as in a
noisy recording and as `headstart.data.audio.with_noise` does for test-time checks. The copies are waveforms, so
they go through `extract_features` like any item: content-addressed in the feature cache, and a second call with the
same seed reads them back without running the backbone. Text and images have no augmentation here: the result is
empty.

The head then trains on the original rows followed by these:

    x = np.concatenate([x_train, views]); y = list(train.targets[task]) + targets[task]
"""

from __future__ import annotations

from typing import Any

import numpy as np

from headstart.backbones.base import Backbone
from headstart.data.dataset import Dataset

AUDIO_COPIES = 2  # copies per clip when `copies` is None: 2 measured as enough on spoken digits (benchmarks/audio.py)


def training_views(
    backbone: Backbone, ds: Dataset, *, seed: int = 0, copies: int | None = None, progress: bool = False
) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Features (copies * len(ds), backbone.embed_dim) of augmented copies of every item of `ds` (copy 0 of every
    item, then copy 1, ...) and their targets per task, in the same order. Modalities without an augmentation
    here (text, image), or `copies=0`, give an empty (0, embed_dim) array and empty target lists."""
    n_copies = (AUDIO_COPIES if copies is None else int(copies)) if ds.modality == "audio" else 0
    if n_copies < 0:
        raise ValueError(f"training_views: copies must be 0 or more, not {copies}")
    if ds.modality == "audio" and backbone.modality != "audio":
        raise ValueError(f"training_views: {backbone.spec} is a {backbone.modality} backbone; the data is audio")
    if n_copies == 0 or len(ds) == 0:
        return np.zeros((0, backbone.embed_dim), np.float32), {task: [] for task in ds.targets}
    views = audio_views(backbone, ds, seed=seed, copies=n_copies)
    from headstart.features.extract import extract_features

    x = extract_features(backbone, views, progress=progress)
    return x, {task: [str(v) for v in labels] * n_copies for task, labels in ds.targets.items()}


def audio_views(backbone: Backbone, ds: Dataset, *, seed: int = 0, copies: int = AUDIO_COPIES) -> Dataset:
    """The augmented copies as an in-memory audio Dataset of waveforms at the backbone's rate (deterministic for a
    given seed, so their content hashes, and the feature cache, match from one call to the next)."""
    from headstart.data.audio import load_audio, other_clips
    from headstart.errors import DataError
    from headstart.features.audio_augment import PROBE_LEVEL, noisy_copy

    # the rate the backbone reads waveforms at; backbones without audio preprocessing (features:log-mel) read 16 kHz
    rate = int(getattr(getattr(backbone, "audio_preprocessing", None), "sample_rate", 16_000))
    waves = []
    for i, item in enumerate(ds.items):
        try:
            waves.append(load_audio(item, rate))
        except Exception as exc:
            raise DataError(f"{ds.where[i]}: cannot be read ({exc})") from None
    keys = [clip_key(wave) for wave in waves]
    items: list[Any] = []
    where: list[str] = []

    def others(i: int) -> Any:  # other clips of the training part, for babble copies
        return lambda rng: [waves[j] for j in other_clips(rng, len(waves), i)]

    for copy in range(copies):
        for i, wave in enumerate(waves):
            rng = np.random.default_rng(_view_seed(seed, copy, keys[i]))
            items.append(noisy_copy(wave, rng, PROBE_LEVEL, rate, talkers=others(i)))
            where.append(f"{ds.where[i]} (augmented copy {copy})")
    return Dataset(
        modality="audio",
        items=items,
        targets={task: list(labels) * copies for task, labels in ds.targets.items()},
        where=where,
        source=f"{ds.source} (augmented x{copies}, seed {seed})",
    )


def clip_key(wave: np.ndarray) -> int:
    """A 64-bit digest of a decoded clip's samples: what seeds its copies, so they follow the clip, not its index."""
    import hashlib

    digest = hashlib.blake2b(np.ascontiguousarray(wave, dtype=np.float32).tobytes(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def _view_seed(seed: int, copy: int, key: int) -> int:
    """One 63-bit seed per (seed, copy, clip): independent streams for every copy of every clip."""
    return int(np.random.SeedSequence([seed & 0xFFFFFFFF, copy, key]).generate_state(2, np.uint64)[0] >> 1)
