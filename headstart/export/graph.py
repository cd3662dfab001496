"""The one torch module that is exported: raw-ish inputs -> backbone features -> each task's probabilities.

What goes in the graph, per modality (the runtime does the rest with numpy, Pillow, tokenizers and soundfile):
- image: input `images`, uint8, N x 3 x H x W (NCHW, H = W = the backbone's size), i.e. after the resize and centre
  crop; scaling to [0, 1], mean / std normalisation, the network and its pooling are in the graph.
- text: inputs `input_ids` and `attention_mask`, int64, N x L (L = the longest text of the batch, at most the
  backbone's max_length); the transformer, pooling and (sentence-transformers) normalisation are in the graph;
  `tokenizer.json` is saved beside it.
- audio: input `waveforms`, float32, N x S (S = window length x sample rate), i.e. after decoding, resampling,
  optional trimming and fitting to the window; the front end (e.g. speech_embedding's mel spectrogram, which headstart
  runs as PyTorch ops, not as the original ONNX files), the network, the padding mask and pooling over time are in
  the graph.
Every head's standardisation (and L2 scaling), its layers and the softmax are in the graph too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from headstart.export.errors import ExportError
from headstart.runtime import FEATURES, probabilities_output

SAMPLE_TEXTS = (
    "Shares in the bank rose after the results.",
    "The team won the match with a late goal.",
    "A new phone and its software were launched today, with a faster processor and a larger screen than before.",
    "Voters go to the polls on Thursday.",
    "hello",
    "The film took the top award at the festival, and its star thanked the director, the crew and her family.",
    "Internet users complained about the outage that lasted most of the afternoon.",
    "Profits fell.",
)


class ExportGraph(nn.Module):
    """Backbone + heads; `forward` takes the modality's graph inputs by name and returns (features, *probabilities)."""

    def __init__(self, backbone: Any, heads: dict[str, Any]) -> None:
        super().__init__()
        self.backbone = backbone
        self.network = backbone.module  # registered, so the weights are the graph's
        self.heads = nn.ModuleList([head.module_ for head in heads.values()])

    def outputs(self, features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        features = features.float()
        return (features, *(torch.softmax(head(features), dim=1) for head in self.heads))


class ImageGraph(ExportGraph):
    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.outputs(self.backbone.embed(images))


class TextGraph(ExportGraph):
    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.outputs(self.backbone.embed({"input_ids": input_ids, "attention_mask": attention_mask}))


class AudioGraph(ExportGraph):
    def forward(self, waveforms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self.outputs(self.backbone.embed(waveforms))


# `fit`'s default (auto) may save such a model: the simple baseline, or a backbone's features joined with its
PROBE_HINT = "`headstart fit --strategy probe` fits the pretrained backbone's own model, which export holds"
GRAPHS = {"image": ImageGraph, "text": TextGraph, "audio": AudioGraph}
INPUTS = {"image": ("images",), "text": ("input_ids", "attention_mask"), "audio": ("waveforms",)}
# the axes that vary between calls: the batch always, the sequence for text
DYNAMIC = {
    "image": {"images": (0,)},
    "text": {"input_ids": (0, 1), "attention_mask": (0, 1)},
    "audio": {"waveforms": (0,)},
}


def build_graph(model: Any) -> ExportGraph:
    """The export module of a `TransferModel`; an ExportError says why a backbone cannot be exported."""
    backbone = model.backbone
    modality = model.modality
    if modality not in GRAPHS:
        raise ExportError(f"cannot export a {modality or 'unknown'} model")
    if getattr(backbone, "parts", None):
        raise ExportError(
            f"{model.backbone_spec}: its features join several backbones' ({', '.join(p.spec for p in backbone.parts)}"
            f"), which one ONNX graph does not hold; export a model on one backbone ({PROBE_HINT})"
        )
    if backbone.preprocessing.get("kind") == "featurizer":  # pixels, log-mel, TF-IDF: numpy / scikit-learn code
        raise ExportError(
            f"{model.backbone_spec}: the simple baseline's hand-made features are computed in Python, not by a "
            f"network; they cannot be put in an ONNX graph ({PROBE_HINT})"
        )
    if not isinstance(getattr(backbone, "module", None), nn.Module) or not hasattr(backbone, "embed"):
        raise ExportError(
            f"{model.backbone_spec}: this backbone is not a PyTorch network; it cannot be exported ({PROBE_HINT})"
        )
    if modality == "audio" and getattr(backbone, "_collate", None) is not None:
        raise ExportError(
            f"{model.backbone_spec}: its batches go through a Hugging Face feature extractor in Python, which cannot "
            "be put in an ONNX graph; export supports waveform-input audio backbones (headstart:speech-embedding, "
            "headstart:logmel-cnn)"
        )
    if modality == "text" and tokenizer_json(backbone) is None:
        raise ExportError(
            f"{model.backbone_spec}: its tokenizer has no tokenizer.json form (a fast tokenizer is needed)"
        )
    backbone.module.eval()
    if modality == "image":  # the plain layout: channels_last is a speed setting of eager PyTorch, not of the graph
        backbone.place("cpu")
        backbone.memory_format = torch.contiguous_format
        backbone.module.to(memory_format=torch.contiguous_format)
    return GRAPHS[modality](backbone, model.heads).eval()


def output_names(model: Any) -> list[str]:
    return [FEATURES, *(probabilities_output(t) for t in model.tasks)]


def tokenizer_json(backbone: Any) -> str | None:
    """The backbone's tokenizer as tokenizer.json text (Hugging Face fast tokenizers), None when it has none."""
    tokenizer = getattr(backbone, "tokenizer", None)
    inner = getattr(tokenizer, "backend_tokenizer", None)
    return None if inner is None else inner.to_str()


def text_settings(backbone: Any) -> dict[str, Any]:
    """How the runtime tokenises as the backbone does: max length, padding token, lower-casing, stripping."""
    tokenizer = backbone.tokenizer
    lowercase = bool(backbone.text_preprocessing.lowercase)
    first = backbone.module[0] if hasattr(backbone.module, "__getitem__") else None
    strip = False
    if type(backbone.module).__name__ == "SentenceTransformer":  # its Transformer module strips each text
        strip = True
        lowercase = lowercase or bool(getattr(first, "do_lower_case", False))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    return {
        "max_length": int(backbone.text_preprocessing.max_length),
        "pad_id": int(pad_id),
        "pad_token": str(tokenizer.pad_token or "[PAD]"),
        "lowercase": lowercase,
        "strip": strip,
    }


def collate(backbone: Any, modality: str, prepared: list[Any]) -> dict[str, torch.Tensor]:
    """A batch of prepared items (as `backbone.prepare` gives) as the graph's named inputs."""
    batch = backbone.collate(prepared)
    if modality == "text":
        return {name: batch[name].to(torch.int64) for name in INPUTS["text"]}
    return {INPUTS[modality][0]: batch}


def sample_items(backbone: Any, modality: str, n: int, seed: int = 0) -> list[Any]:
    """Generated inputs of the right kind, when no check data is given: random RGB images of several sizes, sample
    sentences (repeated, with varied lengths), noise waveforms of several lengths."""
    rng = np.random.default_rng(seed)
    if modality == "image":
        sizes = [(32, 32), (48, 40), (40, 64), (17, 23), (96, 96)]
        return [rng.integers(0, 256, size=(*sizes[i % len(sizes)], 3), dtype=np.uint8) for i in range(n)]
    if modality == "text":
        return [" ".join(SAMPLE_TEXTS[i % len(SAMPLE_TEXTS)] for _ in range(1 + i % 3)) for i in range(n)]
    rate = backbone.audio_preprocessing.sample_rate
    lengths = [0.5, 1.0, 1.7, 2.5, 3.0]
    return [(0.1 * rng.standard_normal(int(rate * lengths[i % len(lengths)]))).astype(np.float32) for i in range(n)]
