"""Augmented training views for the probe (headstart.features.augmented.training_views), and the audio defaults."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from headstart.backbones import create_backbone
from headstart.data import from_arrays, load_data
from headstart.features import extract_features
from headstart.features.augmented import audio_views, training_views

SPEC = "headstart:logmel-cnn"


def test_training_views_differ_are_seeded_cached_and_aligned(tones_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ds = load_data(tones_dir).subset([0, 1, 10, 11])
    bb = create_backbone(SPEC)
    original = extract_features(bb, ds, progress=False)
    x, targets = training_views(bb, ds, seed=3, copies=2)
    assert x.shape == (8, bb.embed_dim) and x.dtype == np.float32 and np.isfinite(x).all()
    assert targets == {"label": list(ds.targets["label"]) * 2}
    assert targets["label"][:4] == ["high", "high", "low", "low"]  # copy 0 of every item, then copy 1, in order
    assert not np.allclose(x[:4], original, atol=1e-3) and not np.allclose(x[4:], original, atol=1e-3)
    assert not np.allclose(x[:4], x[4:], atol=1e-3)  # the two copies differ from each other too

    calls = []
    real_embed = bb.embed
    monkeypatch.setattr(bb, "embed", lambda batch: calls.append(1) or real_embed(batch))
    again, again_targets = training_views(bb, ds, seed=3, copies=2)
    assert calls == [] and np.array_equal(again, x) and again_targets == targets  # same seed: all from the cache
    # a clip's copies follow the clip, not its place: in another subset (a fold of auto, the refit on every label)
    # they are the same copies, read from the cache
    moved, _ = training_views(bb, ds.subset([3, 1]), seed=3, copies=2)
    assert calls == [] and np.array_equal(moved, x[[3, 1, 7, 5]])
    other, _ = training_views(bb, ds, seed=4, copies=2)
    assert calls and not np.allclose(other, x, atol=1e-3)  # another seed: new copies, run through the backbone


def test_views_are_noisy_shifted_windows_with_labels(tones_dir: Path) -> None:
    ds = load_data(tones_dir).subset([0, 10])
    bb = create_backbone(SPEC)
    views = audio_views(bb, ds, seed=0, copies=3)
    assert len(views) == 6 and views.targets["label"] == list(ds.targets["label"]) * 3
    clean = bb.prepare(ds.items[0]).numpy()
    for wave in views.items[0::2]:
        assert wave.dtype == np.float32
        window = bb.prepare(wave).numpy()
        assert window.shape == clean.shape and not np.allclose(window, clean, atol=1e-3)
    assert "augmented copy 2" in views.where[-1]


def test_no_views_for_text_and_images() -> None:
    bb = create_backbone(SPEC)
    texts = from_arrays(["a b", "c d"], ["x", "y"])
    x, targets = training_views(bb, texts, seed=0)
    assert x.shape == (0, bb.embed_dim) and targets == {"label": []}
    with pytest.raises(ValueError, match="copies"):
        training_views(bb, load_data_tones_like(), copies=-1)


def test_views_for_an_audio_featurizer_without_audio_preprocessing(tones_dir: Path) -> None:
    ds = load_data(tones_dir).subset([0, 10])
    bb = create_backbone("features:log-mel")
    x, targets = training_views(bb, ds, seed=0)
    assert x.shape == (4, bb.embed_dim) and targets == {"label": list(ds.targets["label"]) * 2}
    assert not np.allclose(x[:2], extract_features(bb, ds, progress=False), atol=1e-3)


def load_data_tones_like():
    rng = np.random.default_rng(0)
    return from_arrays([0.1 * rng.standard_normal(8000).astype(np.float32)], ["a"], modality="audio")


def test_speech_embedding_defaults_and_old_options() -> None:
    new = create_backbone("headstart:speech-embedding")
    old = create_backbone("headstart:speech-embedding?trim=1&window=1&pool=mean")
    pre = new.describe()["preprocessing"]
    assert (pre["window_s"], pre["trim_silence"], pre["pool"]) == (2.0, False, "meanmax") and new.embed_dim == 192
    assert (old.audio_preprocessing.window_s, old.audio_preprocessing.trim_silence, old.embed_dim) == (1.0, True, 96)
    assert create_backbone("headstart:speech-embedding?pool=mean+std").embed_dim == 192  # "+" reads as a space
    with pytest.raises(Exception, match="pooling must be one of"):
        create_backbone("headstart:speech-embedding?pool=median")


@pytest.mark.slow  # real speech_embedding weights
def test_speech_embedding_pools_only_frames_that_hear_the_clip() -> None:
    from headstart.backbones.audio import pool_frames

    rng = np.random.default_rng(0)
    clip = (0.1 * rng.standard_normal(8000)).astype(np.float32)
    new = create_backbone("headstart:speech-embedding")
    # 0.32 s more window moves the centred clip by 2560 samples, two embedding steps: the frames that hear the clip
    # are the same 16, plus 4 that see only zero padding, which the pooling leaves out
    longer = create_backbone("headstart:speech-embedding?window=2.32")
    with torch.inference_mode():
        a = new.embed(new.collate([new.prepare(clip)]))
        b = longer.embed(longer.collate([longer.prepare(clip)]))
        frames = longer.module(longer.collate([longer.prepare(clip)]))
    assert frames.shape[1] == 20
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(pool_frames(frames, "meanmax"), b, atol=1e-3)  # with the padding frames: different


def test_the_probe_keeps_each_clip_and_its_copies_in_one_fold(tones_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from headstart.heads import LinearHead
    from headstart.probe import fit_heads

    ds = load_data(tones_dir).subset([0, 1, 2, 10, 11, 12])
    bb = create_backbone(SPEC)
    seen = []
    real_fit = LinearHead.fit
    monkeypatch.setattr(
        LinearHead, "fit", lambda self, x, y, groups=None: seen.append(groups) or real_fit(self, x, y, groups)
    )
    x = extract_features(bb, ds, progress=False)
    heads = fit_heads(bb, ds, x, "linear", {"random_state": 0}, seed=0)
    assert list(seen[0]) == list(range(6)) * 3  # the clips, then copy 0 of each, then copy 1: each with its clip's id
    # chosen by cross-validation over every row, each clip with its copies
    assert heads["label"].chosen_["by"].endswith("on 18 rows in 6 groups, each within a fold")


def test_the_probes_rows_are_grouped_by_speaker_where_there_are_enough_speakers() -> None:
    from headstart.data import Dataset
    from headstart.probe import GROUPED_CV_FROM, row_groups

    def clips(speakers: list[str]) -> Dataset:
        n = len(speakers)
        return Dataset("audio", [np.zeros(8, np.float32)] * n, {"label": ["a", "b"] * (n // 2)},
                       [f"clip {i}" for i in range(n)], "memory", groups=speakers)  # fmt: skip

    many = [f"voice {i % GROUPED_CV_FROM}" for i in range(2 * GROUPED_CV_FROM)]
    ids = row_groups(clips(many), len(many), 2 * len(many))
    assert len(ids) == 3 * len(many)  # the clips, then two copies of each
    assert all(len({many[i % len(many)] for i in np.flatnonzero(ids == g)}) == 1 for g in set(ids))  # one voice each
    assert len(set(ids)) == GROUPED_CV_FROM
    few = [f"voice {i % 2}" for i in range(2 * GROUPED_CV_FROM)]
    assert list(row_groups(clips(few), len(few), 2 * len(few))) == list(range(len(few))) * 3  # by clip
    assert row_groups(clips(few), len(few), 0) is None  # no copies, too few voices: nothing to group


def test_an_augmentation_level_draws_its_noise_colour() -> None:
    from dataclasses import replace

    from headstart.features.audio_augment import PROBE_LEVEL

    rng = np.random.default_rng(0)
    assert PROBE_LEVEL.noise_colour(rng) == "white"
    assert rng.random() == np.random.default_rng(0).random()  # one colour: nothing drawn, the copies stay as they were
    mixed = replace(PROBE_LEVEL, colours=("white", "pink", "brown"))
    drawn = [mixed.noise_colour(rng) for _ in range(300)]
    assert {c: drawn.count(c) > 70 for c in mixed.colours} == {"white": True, "pink": True, "brown": True}


def test_babble_is_other_speech_at_the_asked_snr() -> None:
    from headstart.data.audio import active_power, add_babble

    rate = 16_000
    t = np.arange(rate) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    others = [(0.5 * np.sin(2 * np.pi * f * t[: rate // 2])).astype(np.float32) for f in (900, 1300, 2100)]
    mixed = add_babble(wave, others, 10.0, np.random.default_rng(0), rate)
    noise = mixed - wave
    assert mixed.shape == wave.shape and mixed.dtype == np.float32
    assert abs(10 * np.log10(active_power(wave, rate) / np.mean(noise**2)) - 10.0) < 0.1
    spectrum = np.abs(np.fft.rfft(noise))
    assert all(spectrum[f] > 10 * np.median(spectrum) for f in (900, 1300, 2100))  # the other talkers, not noise
    np.testing.assert_array_equal(add_babble(wave, [], 10.0, np.random.default_rng(0), rate), wave)


def test_babble_copies_mix_other_training_clips_never_the_clip_itself(
    tones_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dataclasses import replace

    from headstart.data import audio
    from headstart.features import audio_augment

    ds = load_data(tones_dir).subset([0, 1, 10, 11])
    bb = create_backbone(SPEC)
    seen = []
    real = audio.add_babble

    def spy(wave, others, snr_db, rng, sample_rate=16_000):
        seen.append((wave.copy(), [o.copy() for o in others]))
        return real(wave, others, snr_db, rng, sample_rate)

    monkeypatch.setattr(audio, "add_babble", spy)
    monkeypatch.setattr(audio_augment, "PROBE_LEVEL", replace(audio_augment.PROBE_LEVEL, colours=("babble",)))
    views = audio_views(bb, ds, seed=0, copies=2)
    assert len(seen) == 8 and len(views) == 8
    waves = [audio.load_audio(item, 16_000) for item in ds.items]
    for n, (_, others) in enumerate(seen):
        own = waves[n % 4]
        assert len(others) == 3  # three talkers: every other clip of these four
        assert not any(len(o) == len(own) and np.array_equal(o, own) for o in others)
    with pytest.raises(ValueError, match="talkers"):
        audio_augment.noisy_copy(waves[0], np.random.default_rng(0), audio_augment.PROBE_LEVEL, 16_000)


def test_babble_at_test_time_mixes_other_clips_of_the_data(tones_dir: Path) -> None:
    from headstart.data.audio import active_power, load_audio, with_noise

    ds = load_data(tones_dir).subset([0, 1, 10, 11])
    noisy = with_noise(ds, 5.0, seed=1, colour="babble")
    again = with_noise(ds, 5.0, seed=1, colour="babble")
    assert all(np.array_equal(a, b) for a, b in zip(noisy.items, again.items))  # seeded
    assert noisy.targets == ds.targets and all("babble 5 dB" in w for w in noisy.where)
    for item, mixed in zip(ds.items, noisy.items):
        clean = load_audio(item, 16_000)
        added = mixed[: len(clean)] - clean
        assert abs(10 * np.log10(active_power(clean, 16_000) / np.mean(added**2)) - 5.0) < 0.2
    with pytest.raises(ValueError, match="babble"):
        with_noise(ds, 5.0, colour="purple")
    from headstart.errors import DataError

    with pytest.raises(DataError, match="only 1"):
        with_noise(ds.subset([0]), 5.0, colour="babble")
