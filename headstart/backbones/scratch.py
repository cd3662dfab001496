"""`headstart:NAME` architectures built from scratch (random init), meant to be pretrained on your own data.

Every option lives in the spec, so `create_backbone(spec + "?init=random")` rebuilds the exact architecture that
`local:DIR` loads trained weights into:

- `dense-encoder?input=8&code=32[&hidden=0]`: flatten -> [Dense(hidden, relu)] -> Dense(code, relu), the encoder of
  the classic dense autoencoder (input -> 32-unit code -> input).
- `conv-encoder?input=16&width=16&code=32`: two stride-2 convolutions -> Dense(code, relu).
- `dcgan-d?size=32&width=32&pool=2`: a DCGAN discriminator trunk (stride-2 convolutions, LeakyReLU, BatchNorm);
  its embedding is every block's feature maps max-pooled to pool x pool and concatenated (Radford et al. 2015).
- `cnn?size=16&width=32`: a small VGG-style CNN (3x3 convs, BatchNorm, ReLU), global-average-pooled, for
  contrastive pretraining on small images.

Preprocessing travels with each: `size` (or `input`) pixels, the whole image resized (no crop), grayscale by
default (`gray=1`: the three channels the decoder gives are averaged inside the module; `gray=0` keeps RGB).
`dense-encoder` and `conv-encoder` see pixels in [0, 1] (their autoencoders' sigmoid outputs reconstruct them);
`dcgan-d` and `cnn` see [-1, 1].
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from headstart.backbones.base import BackboneSpec, ImageBackbone, ImagePreprocessing
from headstart.errors import BackboneError

NAMES = {
    "dense-encoder": "dense encoder to a 32-unit code (the classic autoencoder's), random init: pretrain it",
    "conv-encoder": "2-conv encoder to a 32-unit code, random init: pretrain it (autoencoder)",
    "dcgan-d": "DCGAN discriminator trunk, multi-layer max-pooled features, random init: pretrain it (gan)",
    "cnn": "small VGG-style CNN for small images, random init: pretrain it (contrastive)",
}

_OPTIONS = {
    "dense-encoder": {"input": 8, "code": 32, "hidden": 0, "gray": 1},
    "conv-encoder": {"input": 16, "width": 16, "code": 32, "gray": 1},
    "dcgan-d": {"size": 32, "width": 32, "pool": 2, "gray": 1},
    "cnn": {"size": 16, "width": 32, "gray": 1},
}
_COMMON = {"init", "seed", "size", "input"}


def options(spec: BackboneSpec) -> dict[str, int]:
    """The architecture's integer options: the spec's, defaults filled in; unknown names and bad values raise."""
    defaults = _OPTIONS[spec.name]
    unknown = sorted(set(spec.options) - set(defaults) - _COMMON)
    if unknown:
        raise BackboneError(
            f"headstart:{spec.name} has no option {', '.join(unknown)}; its options: {', '.join(defaults)}"
        )
    out = dict(defaults)
    for key in defaults:
        if key in spec.options:
            try:
                out[key] = int(spec.options[key])
            except ValueError:
                raise BackboneError(
                    f"headstart:{spec.name}: option {key} must be an integer, not {spec.options[key]!r}"
                ) from None
    if out.get("input", out.get("size", 1)) < 4:
        raise BackboneError(f"headstart:{spec.name}: images must be at least 4 pixels wide")
    return out


def load(spec: BackboneSpec) -> ImageBackbone:
    o = options(spec)
    torch.manual_seed(int(spec.options.get("seed", 0)))
    channels = 1 if o["gray"] else 3
    if spec.name == "dense-encoder":
        module: nn.Module = DenseEncoder(o["input"], channels, o["code"], o["hidden"])
        dim, side, unit = o["code"], o["input"], True
    elif spec.name == "conv-encoder":
        module, dim, side, unit = ConvEncoder(o["input"], channels, o["width"], o["code"]), o["code"], o["input"], True
    elif spec.name == "dcgan-d":
        module = DCGANTrunk(o["size"], channels, o["width"], o["pool"])
        dim, side, unit = module.embed_dim, o["size"], False
    else:
        module, dim, side, unit = SmallCNN(channels, o["width"]), 4 * o["width"], o["size"], False
    mean, std = ((0.0,) * 3, (1.0,) * 3) if unit else ((0.5,) * 3, (0.5,) * 3)
    pre = ImagePreprocessing(size=side, crop_pct=1.0, mean=mean, std=std, interpolation="bilinear")
    return ImageBackbone(
        str(spec),
        module,
        embed_dim=dim,
        weights_id=f"random-seed{spec.options.get('seed', 0)}",
        preprocessing=pre,
        forward_embed=_embed,
    )


def _embed(module: nn.Module, images: torch.Tensor) -> torch.Tensor:
    return module(images)


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """(B, 3, H, W) RGB -> (B, 1, H, W) by averaging when the model is grayscale; anything else as it is."""
    if channels == 1 and x.shape[1] == 3:
        return x.mean(dim=1, keepdim=True)
    return x


class DenseEncoder(nn.Module):
    def __init__(self, side: int, channels: int, code: int, hidden: int = 0) -> None:
        super().__init__()
        self.side, self.channels = side, channels
        n_in = side * side * channels
        layers: list[nn.Module] = [nn.Flatten()]
        if hidden:
            layers += [nn.Linear(n_in, hidden), nn.ReLU()]
        layers += [nn.Linear(hidden or n_in, code), nn.ReLU()]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(to_channels(x, self.channels))


class ConvEncoder(nn.Module):
    def __init__(self, side: int, channels: int, width: int, code: int) -> None:
        super().__init__()
        self.side, self.channels, self.width = side, channels, width
        self.convs = nn.Sequential(
            nn.Conv2d(channels, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        self.grid = (side + 3) // 4
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(2 * width * self.grid * self.grid, code), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(to_channels(x, self.channels)))


class DCGANTrunk(nn.Module):
    """Stride-2 4x4 convolutions down to 4x4 maps, width doubling; LeakyReLU(0.2), BatchNorm after the first."""

    def __init__(self, size: int, channels: int, width: int, pool: int) -> None:
        super().__init__()
        if size < 8 or size & (size - 1):
            raise BackboneError(f"headstart:dcgan-d: size must be a power of two from 8 up, not {size}")
        self.channels, self.pool = channels, pool
        self.blocks = nn.ModuleList()
        cin, cout, side = channels, width, size
        while side > 4:
            layers: list[nn.Module] = [nn.Conv2d(cin, cout, 4, stride=2, padding=1, bias=cin == channels)]
            if cin != channels:
                layers.append(nn.BatchNorm2d(cout))
            layers.append(nn.LeakyReLU(0.2))
            self.blocks.append(nn.Sequential(*layers))
            cin, cout, side = cout, cout * 2, side // 2
        self.out_channels = cin
        self.embed_dim = sum(b[0].out_channels for b in self.blocks) * pool * pool

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        maps = []
        x = to_channels(x, self.channels)
        for block in self.blocks:
            x = block(x)
            maps.append(x)
        return maps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = [nn.functional.adaptive_max_pool2d(m, self.pool).flatten(1) for m in self.feature_maps(x)]
        return torch.cat(pooled, dim=1)


class SmallCNN(nn.Module):
    """[conv-conv-maxpool] x 2 -> conv -> global average pool: width, 2*width, 4*width channels."""

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        self.channels = channels

        def conv(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        w = width
        self.features = nn.Sequential(
            *conv(channels, w),
            *conv(w, w),
            nn.MaxPool2d(2),
            *conv(w, 2 * w),
            *conv(2 * w, 2 * w),
            nn.MaxPool2d(2),
            *conv(2 * w, 4 * w),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(to_channels(x, self.channels)).mean(dim=(2, 3))


def available() -> list[dict[str, Any]]:
    return [
        {"spec": f"headstart:{name}", "modality": "image", "offline": True, "note": note}
        for name, note in NAMES.items()
    ]
