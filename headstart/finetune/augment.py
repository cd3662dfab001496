"""Training-time augmentation, as per-item transforms that run in DataLoader workers (picklable classes).

Images: torchvision.transforms.v2 — RandomResizedCrop and horizontal flip (`light`), plus TrivialAugmentWide
(`strong`); MixUp / CutMix act on whole batches (`batch_mix`). Text: word dropout. Audio: speed/pitch, gain, noise,
shift and SpecAugment masks (see `audio_augment`). `none` leaves the backbone's own
evaluation preprocessing. Every item is augmented under its own seed (run seed, epoch, index), so a resumed run sees
exactly the images an uninterrupted one would, whatever the number of workers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import torch

from headstart.backbones.base import Backbone, ImageBackbone
from headstart.finetune.config import AugmentConfig

CROP_SCALE = {"light": (0.6, 1.0), "strong": (0.35, 1.0)}


class ImageAugment:
    def __init__(self, backbone: ImageBackbone, config: AugmentConfig) -> None:
        from torchvision.transforms import v2

        pre = backbone.image_preprocessing
        mode = v2.InterpolationMode(pre.interpolation)
        steps: list[Any] = [
            v2.ToImage(),
            v2.RandomResizedCrop(pre.size, scale=CROP_SCALE[config.augment], interpolation=mode, antialias=True),
        ]
        if config.hflip:
            steps.append(v2.RandomHorizontalFlip())
        if config.augment == "strong":
            steps.append(v2.TrivialAugmentWide(interpolation=mode))
        self._pipeline = v2.Compose(steps)  # uint8 out: the backbone normalises whole batches on the device

    def __call__(self, item: Any) -> torch.Tensor:
        from headstart.data import load_image

        return self._pipeline(load_image(item))


class WordDropout:
    """Drop each word with probability `p` (keeping at least one), then the backbone's own text preparation."""

    def __init__(self, backbone: Backbone, p: float) -> None:
        self.backbone, self.p = backbone, p

    def __call__(self, text: str, rng: random.Random) -> str:
        words = text.split()
        kept = [w for w in words if rng.random() >= self.p] or words[:1]
        return self.backbone.prepare(" ".join(kept))


def train_transform(backbone: Backbone, config: AugmentConfig) -> Callable[[Any, int], Any]:
    """A function `(item, item_seed) -> prepared item` for training."""
    if backbone.modality == "audio":
        from headstart.features.audio_augment import audio_train_transform

        return audio_train_transform(backbone, config.augment) or _Plain(backbone)  # type: ignore[arg-type]
    if config.augment == "none":
        return _Plain(backbone)
    if isinstance(backbone, ImageBackbone):
        return _Seeded(ImageAugment(backbone, config))
    p = config.word_dropout if config.word_dropout is not None else {"light": 0.1, "strong": 0.2}[config.augment]
    return _SeededText(WordDropout(backbone, p))


class _Plain:
    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone

    def __call__(self, item: Any, seed: int) -> Any:
        return self.backbone.prepare(item)


class _Seeded:
    """Run a torch-random transform under its own seed, leaving the process's random state as it was."""

    def __init__(self, transform: Callable[[Any], Any]) -> None:
        self.transform = transform

    def __call__(self, item: Any, seed: int) -> Any:
        with torch.random.fork_rng(devices=[]):
            # the CPU generator alone: `torch.manual_seed` also queues seeding of every accelerator, recording a
            # stack trace each time where CUDA is not initialised (DataLoader workers): 1 ms per item, most of an
            # epoch's data time for small images
            torch.default_generator.manual_seed(seed)
            return self.transform(item)


class _SeededText:
    def __init__(self, transform: WordDropout) -> None:
        self.transform = transform

    def __call__(self, item: str, seed: int) -> str:
        return self.transform(item, random.Random(seed))


def batch_mix(config: AugmentConfig, n_classes: int) -> Callable[[torch.Tensor, torch.Tensor], tuple] | None:
    """MixUp and/or CutMix on a batch of images: returns (images, soft targets); None when both are off."""
    if config.mixup <= 0 and config.cutmix <= 0:
        return None
    from torchvision.transforms import v2

    choices = []
    if config.mixup > 0:
        choices.append(v2.MixUp(alpha=config.mixup, num_classes=n_classes))
    if config.cutmix > 0:
        choices.append(v2.CutMix(alpha=config.cutmix, num_classes=n_classes))
    return choices[0] if len(choices) == 1 else v2.RandomChoice(choices)
