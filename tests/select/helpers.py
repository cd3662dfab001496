"""Small backbones for the selection tests: a tiny CNN with a source classifier and a noise encoder."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from headstart.backbones.base import ImageBackbone, ImagePreprocessing
from headstart.backbones.shipped import TinyCNN
from tests.conftest import digit_images

PRE = ImagePreprocessing(size=16, crop_pct=1.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear")


class WithHead(nn.Module):
    def __init__(self, n_source_classes: int = 7) -> None:
        super().__init__()
        self.body = TinyCNN()
        self.head = nn.Linear(self.body.num_features, n_source_classes)


def with_source_classifier(n_source_classes: int = 7, seed: int = 0) -> ImageBackbone:
    """A tiny random CNN plus a linear 'source classifier', built like any image backbone with one."""
    torch.manual_seed(seed)
    module = WithHead(n_source_classes)
    return ImageBackbone(
        f"test:tiny-cnn-with-head?seed={seed}",
        module,
        embed_dim=module.body.num_features,
        weights_id=f"test-seed{seed}",
        preprocessing=PRE,
        forward_embed=lambda m, x: m.body(x),
        forward_logits=lambda m, x: m.head(m.body(x)),
    )


def noise_encoder(dim: int = 64) -> ImageBackbone:
    """Embeddings that depend on the input but carry nothing a linear model or kNN could use: sin of a huge
    random projection of the pixels."""
    torch.manual_seed(123)
    module = nn.Linear(3 * 16 * 16, dim, bias=False)
    return ImageBackbone(
        "test:noise",
        module,
        embed_dim=dim,
        weights_id="test-noise",
        preprocessing=PRE,
        forward_embed=lambda m, x: torch.sin(1e4 * m(x.flatten(1))),
    )


def digits(n_per_class: int = 30, seed: int = 0) -> tuple[list[np.ndarray], list[str]]:
    """`tests.conftest.digit_images`, a random draw by default (test_commands.py imports it by this name)."""
    return digit_images(n_per_class, seed)
