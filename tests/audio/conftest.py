"""Small audio for the audio tests: two classes of tones (low, high) written as real files, tiny Hugging Face audio
models saved locally, and the espeak-ng sample set (skipped where espeak-ng is not installed)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def tone(freq: float, seconds: float = 0.5, rate: int = 8000, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A sine at `freq` Hz with a little noise, silence before and after; (samples,) or (samples, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))
    wave = np.concatenate([np.zeros(rate // 10), wave, np.zeros(rate // 10)]).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def write_wav(path: Path, wave: np.ndarray, rate: int = 8000, subtype: str | None = None) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, rate, subtype=subtype)
    return path


@pytest.fixture
def make_wav() -> Callable[..., Path]:
    return write_wav


@pytest.fixture(scope="session")
def tones_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tones/<low|high>/<i>.wav|.flac: 10 clips per class at 8 kHz (resampled to 16 kHz by the backbones)."""
    root = tmp_path_factory.mktemp("tones") / "tones"
    for label, base in (("low", 300.0), ("high", 2000.0)):
        for i in range(10):
            ext = ".flac" if i % 3 == 0 else ".wav"
            write_wav(root / label / f"{i}{ext}", tone(base + 40 * i, seconds=0.3 + 0.05 * i, seed=i))
    return root


@pytest.fixture(scope="session")
def tiny_audio_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random tiny wav2vec2, HuBERT and Whisper models with their feature extractors, saved as transformers folders."""
    import torch
    from transformers import (
        HubertConfig,
        HubertModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    root = tmp_path_factory.mktemp("tiny-audio")
    small = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "conv_dim": (16, 16, 16),
        "conv_stride": (5, 4, 4),
        "conv_kernel": (10, 4, 4),
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
    }
    torch.manual_seed(1)
    Wav2Vec2Model(Wav2Vec2Config(**small)).save_pretrained(root / "wav2vec2")
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(root / "wav2vec2")
    HubertModel(HubertConfig(**small)).save_pretrained(root / "hubert")
    Wav2Vec2FeatureExtractor().save_pretrained(root / "hubert")
    whisper = WhisperConfig(
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        max_source_positions=100,  # 2 s of 10 ms frames, halved by the encoder's stride-2 convolution
        max_target_positions=16,
        vocab_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    WhisperModel(whisper).save_pretrained(root / "whisper")
    WhisperFeatureExtractor(feature_size=16, chunk_length=2).save_pretrained(root / "whisper")
    return {name: root / name for name in ("wav2vec2", "hubert", "whisper")}


@pytest.fixture(scope="session")
def spoken_digits():
    """samples:spoken-digits, synthesised once per session into the session's cache."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); samples:spoken-digits needs it")
    from headstart.data import load_data

    return load_data("samples:spoken-digits")
