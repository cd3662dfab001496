"""`headstart:` audio backbones.

- `speech-embedding`: Google's pretrained speech_embedding model (as used by openWakeWord; 96-d per 80 ms frame,
  16 kHz), rebuilt in PyTorch by `headstart.backbones.speech_embedding`. Defaults chosen on noisy speech from unseen
  voices (benchmarks/audio.py): the whole clip in a 2 s window (centred, zero-padded; longer clips keep their
  centre 2 s), no silence trimming (it keeps the noise with the speech and cuts nothing at 10 dB SNR, so clean and
  noisy clips would be framed differently), and mean+max pooling over the frames that hold audio (192-d).
- `logmel-cnn`: a log-mel front end (torch.stft + mel filterbank) and a four-block CNN, random init (seeded):
  the from-scratch baseline, trainable end to end, with SpecAugment masks in train mode; the same 2 s window without
  trimming, its feature map averaged over frequency and mean-pooled over time (128-d).

Options on either spec: `?window=SECONDS` (window length), `?trim=1` (cut leading/trailing silence first) and
`?pool=mean|meanmax|meanstd`; `?trim=1&window=1&pool=mean` is the original speech-embedding behaviour.
`logmel-cnn` also takes `?seed=N`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

from headstart.backbones.audio import AudioBackbone, AudioPreprocessing, LogMel, SpecAugment, audio_options
from headstart.backbones.base import Backbone, BackboneSpec
from headstart.errors import BackboneError

NAMES = {
    "speech-embedding": "Google speech_embedding (openWakeWord) in PyTorch, 96-d frames at 16 kHz, mean+max pooled",
    "logmel-cnn": "log-mel + 4-block CNN (128-d), random init: the from-scratch audio baseline",
}

SPEECH_EMBEDDING_PREPROCESSING = AudioPreprocessing(
    sample_rate=16_000, window_s=2.0, trim_silence=False, pool="meanmax"
)
LOGMEL_PREPROCESSING = AudioPreprocessing(sample_rate=16_000, window_s=2.0, trim_silence=False, pool="mean")


def load(spec: BackboneSpec) -> Backbone:
    if spec.name == "logmel-cnn":
        return _logmel_cnn(spec)
    if spec.name == "speech-embedding":
        return _speech_embedding(spec)
    raise BackboneError(f"headstart ships no audio backbone named {spec.name!r}; it ships: {', '.join(NAMES)}")


class LogMelCNN(nn.Module):
    """log-mel (64 bins, 25 ms / 10 ms) -> per-clip normalisation -> SpecAugment (train mode) -> 4 x (conv 3x3,
    BatchNorm, ReLU, 2x2 max-pool) -> global average pool. About 150k parameters."""

    def __init__(
        self, sample_rate: int = 16_000, n_mels: int = 64, widths: tuple[int, ...] = (24, 48, 96, 128)
    ) -> None:
        super().__init__()
        self.frontend = LogMel(sample_rate=sample_rate, n_mels=n_mels)
        self.spec_augment = SpecAugment()
        layers: list[nn.Module] = []
        for cin, cout in zip((1, *widths), widths):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.num_features = widths[-1]

    def frames(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, N) waveforms -> (B, T, C) feature-map columns (averaged over frequency), T = frames / 16."""
        x = self.frontend(wave)
        x = (x - x.mean(dim=(1, 2), keepdim=True)) / (x.std(dim=(1, 2), keepdim=True) + 1e-5)  # per clip: gain-free
        x = self.spec_augment(x)
        return self.features(x.unsqueeze(1)).mean(dim=2).transpose(1, 2)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.frames(wave).mean(dim=1)


def _logmel_cnn(spec: BackboneSpec) -> AudioBackbone:
    seed = int(spec.options.get("seed", 0))
    pre = audio_options(spec.options, LOGMEL_PREPROCESSING)
    torch.manual_seed(seed)
    model = LogMelCNN(sample_rate=pre.sample_rate)
    return AudioBackbone(
        str(spec),
        model,
        embed_dim=model.num_features,
        weights_id=f"random-seed{seed}",
        preprocessing=pre,
        forward_embed=_cnn_frames,
    )


def _cnn_frames(module: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    return module.frames(batch)


def _speech_frames(module: nn.Module, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame embeddings and the mask of the frames whose 0.78 s receptive field holds any non-zero sample: the
    window's zero padding alone is not the clip (pooling leaves those frames out)."""
    from headstart.backbones.speech_embedding import audio_frames

    return module(batch), audio_frames(batch)


def load_speech_module() -> tuple[nn.Module, int]:
    """The rebuilt speech embedding model and its sample rate; a BackboneError says what is missing."""
    try:
        from headstart.backbones import speech_embedding
    except ImportError as exc:
        raise BackboneError(f"headstart:speech-embedding is not available in this installation ({exc})") from None
    try:
        module = speech_embedding.load_speech_embedding()
    except BackboneError:
        raise
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BackboneError(f"headstart:speech-embedding: cannot load the model ({reason})") from None
    return module, int(getattr(speech_embedding, "SAMPLE_RATE", 16_000))


def _speech_embedding(spec: BackboneSpec) -> AudioBackbone:
    module, rate = load_speech_module()
    if spec.random_init:
        torch.manual_seed(0)
        for m in module.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        weights_id = "random-seed0"
    else:
        weights_id = state_digest(module)
    pre = audio_options(spec.options, SPEECH_EMBEDDING_PREPROCESSING)
    if pre.sample_rate != rate:
        from dataclasses import replace

        pre = replace(pre, sample_rate=rate)
    with torch.inference_mode():
        dim = int(module.eval()(torch.zeros(1, pre.num_samples)).shape[-1])
    return AudioBackbone(
        str(spec), module, embed_dim=dim, weights_id=weights_id, preprocessing=pre, forward_embed=_speech_frames
    )


def state_digest(module: nn.Module) -> str:
    """A short hash of every tensor in the state dict: identifies weights that come from inside a package."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        h.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def available() -> list[dict[str, Any]]:
    rows = []
    for name, note in NAMES.items():
        ok = True
        if name == "speech-embedding":
            import importlib.util

            ok = importlib.util.find_spec("headstart.backbones.speech_embedding") is not None
        rows.append({"spec": f"headstart:{name}", "modality": "audio", "offline": ok, "note": note})
    return rows
