"""Audio backbones through the registry: headstart:logmel-cnn, headstart:speech-embedding and tiny hf: models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from headstart.backbones import create_backbone, list_backbones
from headstart.backbones.audio import AudioBackbone
from headstart.data import load_data
from headstart.features import extract_features


@pytest.fixture(scope="module")
def logmel() -> AudioBackbone:
    return create_backbone("headstart:logmel-cnn")


def test_logmel_cnn_prepares_paths_and_arrays(logmel: AudioBackbone, tones_dir: Path) -> None:
    path = sorted(tones_dir.rglob("*.wav"))[0]
    x = logmel.prepare(path)
    assert x.shape == (32000,) and x.dtype == torch.float32  # the whole clip in a 2 s window
    assert logmel.prepare(np.zeros(4000, np.float32)).shape == (32000,)
    batch = logmel.collate([x, x])
    assert logmel.batch_size_of(batch) == 2
    assert logmel.embed(batch).shape == (2, 128) and logmel.modality == "audio"
    assert logmel.describe()["preprocessing"] == {
        "kind": "audio",
        "sample_rate": 16000,
        "window_s": 2.0,
        "trim_silence": False,
        "top_db": 40.0,
        "pool": "mean",
    }


def test_logmel_cnn_is_differentiable_and_masks_only_in_train_mode(logmel: AudioBackbone) -> None:
    module = logmel.module
    wave = torch.randn(2, 16000) * 0.1
    module.train()
    module.spec_augment.configure(2, 12, 2, 15)
    torch.manual_seed(0)
    out = logmel.embed(wave)
    out.sum().backward()
    assert all(p.grad is not None for p in module.parameters())
    module.eval()
    module.zero_grad()
    with torch.no_grad():
        a, b = logmel.embed(wave), logmel.embed(wave)
    assert torch.equal(a, b)
    module.spec_augment.configure(0, 0, 0, 0)


def test_options_change_the_cache_key() -> None:
    a = create_backbone("headstart:logmel-cnn")
    b = create_backbone("headstart:logmel-cnn?window=0.5")
    c = create_backbone("headstart:logmel-cnn?seed=1")
    d = create_backbone("headstart:logmel-cnn?pool=meanstd")
    assert b.audio_preprocessing.num_samples == 8000 and d.embed_dim == 2 * a.embed_dim
    assert len({a.cache_key, b.cache_key, c.cache_key, d.cache_key}) == 4
    with pytest.raises(Exception, match=r"\?window= takes seconds"):
        create_backbone("headstart:logmel-cnn?window=long")
    rows = {r["spec"]: r for r in list_backbones()}
    assert rows["headstart:logmel-cnn"]["modality"] == "audio"


@pytest.mark.parametrize("name", ["wav2vec2", "hubert", "whisper"])
def test_hf_audio_models(name: str, tiny_audio_models: dict[str, Path], tones_dir: Path) -> None:
    bb = create_backbone(f"hf:{tiny_audio_models[name]}")
    assert isinstance(bb, AudioBackbone) and bb.embed_dim == 32
    ds = load_data(tones_dir).subset([0, 1, 2])
    x = extract_features(bb, ds, cache=False, progress=False)
    assert x.shape == (3, 32) and np.isfinite(x).all()
    batch = bb.collate([bb.prepare(i) for i in ds.items[:2]])
    bb.module.train()
    bb.embed(batch).sum().backward()
    assert any(p.grad is not None for p in bb.module.parameters())
    bb.module.eval()


@pytest.mark.slow  # real speech_embedding weights
def test_speech_embedding(tones_dir: Path) -> None:
    bb = create_backbone("headstart:speech-embedding")
    assert bb.embed_dim == 192 and bb.frame_dim == 96 and bb.audio_preprocessing.sample_rate == 16000  # mean+max
    x = extract_features(bb, load_data(tones_dir).subset([0, 10]), cache=False, progress=False)
    assert x.shape == (2, 192) and np.isfinite(x).all()
    assert not np.allclose(x[0], x[1])
