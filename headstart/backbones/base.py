"""What every backbone is: a torch module mapping a batch to embeddings, plus the preprocessing that travels with it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import torch
from torch import nn

from headstart.errors import BackboneError


@dataclass(frozen=True)
class BackboneSpec:
    """A parsed spec string: `prefix:name?key=value&...`, e.g. `timm:resnet18?init=random`."""

    prefix: str
    name: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, spec: str) -> BackboneSpec:
        if ":" not in spec:
            raise BackboneError(
                f"backbone spec {spec!r} has no source prefix; write e.g. timm:resnet18, hf:bert-base-uncased, "
                f"st:all-MiniLM-L6-v2, headstart:efficientnet-lite0 or local:PATH"
            )
        prefix, rest = spec.split(":", 1)
        name, _, query = rest.partition("?")
        if not name:
            raise BackboneError(f"backbone spec {spec!r} names no model after {prefix}:")
        return cls(prefix, name, dict(parse_qsl(query)))

    @property
    def random_init(self) -> bool:
        return self.options.get("init", "pretrained") == "random"

    def __str__(self) -> str:
        query = "&".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.prefix}:{self.name}" + (f"?{query}" if query else "")


@dataclass(frozen=True)
class ImagePreprocessing:
    """timm-style eval preprocessing: resize the short side to size/crop_pct, centre-crop, scale, normalise."""

    size: int = 224
    crop_pct: float = 0.875
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    interpolation: str = "bicubic"

    def to_json(self) -> dict[str, Any]:
        return {"kind": "image", **asdict(self)}

    def transform(self) -> ImageTransform:
        return ImageTransform(self)


class ImageTransform:
    """Decode one image item and resize / crop it to a uint8 CHW tensor. Picklable, so it runs in DataLoader workers.

    Scaling and normalisation happen on whole batches, on the device the model runs on (`ImageBackbone.normalize`):
    uint8 batches are a quarter of the bytes float32 ones are to pass between processes and to a GPU.
    """

    def __init__(self, pre: ImagePreprocessing) -> None:
        from torchvision.transforms import v2

        resize = max(pre.size, int(round(pre.size / pre.crop_pct)))
        mode = v2.InterpolationMode(pre.interpolation)
        self._pipeline = v2.Compose(
            [
                v2.ToImage(),
                v2.Resize(resize, interpolation=mode, antialias=True),
                v2.CenterCrop(pre.size),
            ]
        )

    def __call__(self, item: Any) -> torch.Tensor:
        from headstart.data import load_image

        return self._pipeline(load_image(item))


@dataclass(frozen=True)
class TextPreprocessing:
    """Tokenisation settings: which tokenizer (by the backbone it belongs to) and the maximum length in tokens."""

    max_length: int = 256
    lowercase: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"kind": "text", **asdict(self)}


ModuleOrBuilder = nn.Module | Callable[[], nn.Module]


class Backbone:
    """A pretrained (or randomly initialised) encoder with its preprocessing.

    `prepare(item)` runs per item (in DataLoader workers for images), `collate(prepared)` makes a batch and
    `embed(batch)` maps it to a (batch, embed_dim) tensor; `embed` is differentiable so fine-tuning uses the same path.
    `module` holds every parameter. `weights_id` identifies the weights (a file's size and time, a hub revision,
    `random-seed0`), so the feature cache never mixes two sets of weights under one spec.

    The module may be built lazily: pass a zero-argument builder instead of a module, and it runs on the first access
    to `module` (embed, place, fine-tuning, saving...). `spec`, `modality`, `embed_dim`, `preprocessing`,
    `weights_id`, `cache_key` and `describe()` never need it, so extraction whose every item is in the feature cache
    never builds the network. `built` says whether it has been built; `after_build(fn)` runs `fn(module)` on the
    module before anyone can use it (e.g. loading trained weights), at once when it is built already.
    """

    modality: str
    embed_dim: int

    def __init__(self, spec: str, module: ModuleOrBuilder, *, embed_dim: int, weights_id: str) -> None:
        self.spec = spec
        self.embed_dim = embed_dim
        self.weights_id = weights_id
        self._pending: list[Callable[[nn.Module], None]] = []
        if isinstance(module, nn.Module):
            self._module: nn.Module | None = module.eval()
            self._builder: Callable[[], nn.Module] | None = None
        else:
            self._module, self._builder = None, module

    @property
    def module(self) -> nn.Module:
        """The torch module holding every parameter; built on first access when the backbone is lazy."""
        if self._module is None:
            self._materialise()
        assert self._module is not None
        return self._module

    @module.setter
    def module(self, module: nn.Module) -> None:
        self._module, self._builder, self._pending = module, None, []

    @property
    def built(self) -> bool:
        """Whether the module exists yet (a lazy backbone builds it on first use)."""
        return self._module is not None

    def after_build(self, hook: Callable[[nn.Module], None]) -> None:
        """Run `hook(module)` once the module is built, before it is handed to anyone; now if it is built already."""
        if self._module is not None:
            hook(self._module)
        else:
            self._pending.append(hook)

    def _materialise(self) -> None:
        if self._builder is None:
            raise BackboneError(f"{self.spec}: the backbone has no module and nothing to build one from")
        with torch.random.fork_rng(devices=[]):  # however late it is built, the caller's random stream is untouched
            module = self._builder()
        for hook in self._pending:  # all or nothing: a failing hook leaves the backbone unbuilt, not half-built
            hook(module)
        self._module, self._builder, self._pending = module.eval(), None, []
        self._on_build()

    def _on_build(self) -> None:
        """Subclasses: set-up that needs the module (e.g. the memory layout), run once it is built."""

    def __getstate__(self) -> dict[str, Any]:
        """A pickled backbone (DataLoader workers that spawn, other processes) is built first and carries its module,
        as before backbones were lazy: builders are closures, which do not pickle."""
        _ = self.module
        return self.__dict__.copy()

    @property
    def preprocessing(self) -> dict[str, Any]:
        raise NotImplementedError

    def ready_to_prepare(self) -> None:
        """Make what `prepare` needs (e.g. an image pipeline) now, in this process, so that DataLoader workers started
        from it inherit it instead of each making it again."""

    def prepare(self, item: Any) -> Any:
        raise NotImplementedError

    def collate(self, prepared: Sequence[Any]) -> Any:
        raise NotImplementedError

    def embed(self, batch: Any) -> torch.Tensor:
        raise NotImplementedError

    def batch_size_of(self, batch: Any) -> int:
        raise NotImplementedError

    def source_logits(self, batch: Any) -> torch.Tensor | None:
        """Logits of the backbone's own source-task classifier (e.g. ImageNet), if it has one."""
        return None

    @property
    def has_source_classifier(self) -> bool:
        """False when `source_logits` is known to give None, without building anything; True when it may not."""
        return type(self).source_logits is not Backbone.source_logits

    def place(self, device: torch.device | str, *, half_precision: bool = False) -> None:
        """Move the module to `device` (in the layout that runs fastest there, for image backbones).
        `half_precision`: its convolutions will run in float16 / bfloat16 (autocast)."""
        self.module.to(device)

    @property
    def cache_key(self) -> str:
        blob = json.dumps({"spec": self.spec, "pre": self.preprocessing, "weights": self.weights_id}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:24]

    def describe(self) -> dict[str, Any]:
        return {
            "spec": self.spec,
            "modality": self.modality,
            "embed_dim": self.embed_dim,
            "preprocessing": self.preprocessing,
            "weights_id": self.weights_id,
        }


class ImageBackbone(Backbone):
    """An image encoder: `forward_embed(images)` maps (B, 3, H, W) to (B, D)."""

    modality = "image"

    def __init__(
        self,
        spec: str,
        module: ModuleOrBuilder,
        *,
        embed_dim: int,
        weights_id: str,
        preprocessing: ImagePreprocessing,
        forward_embed: Callable[[nn.Module, torch.Tensor], torch.Tensor],
        forward_logits: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
        logits_of_features: Callable[[nn.Module, torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        """`logits_of_features(module, embeddings)`, where the source classifier reads the embeddings themselves
        (timm's pre-logits): source logits then come from cached features, with no second pass of the network."""
        super().__init__(spec, module, embed_dim=embed_dim, weights_id=weights_id)
        self.memory_format = preferred_memory_format(torch.device("cpu"), False)
        self.image_preprocessing = preprocessing
        self._transform: ImageTransform | None = None  # made on first use: torchvision takes seconds to import
        self._forward_embed = forward_embed
        self._forward_logits = forward_logits
        self._logits_of_features = logits_of_features if forward_logits is not None else None
        if self.built:
            self._on_build()

    def _on_build(self) -> None:
        first = next(self.module.parameters(), None)
        self.place(first.device if first is not None else "cpu")  # where it is, in the layout that runs fastest

    @property
    def has_source_classifier(self) -> bool:
        return self._forward_logits is not None

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.image_preprocessing.to_json()

    def set_preprocessing(self, preprocessing: ImagePreprocessing) -> None:
        """Use other preprocessing (image size, crop, ...); it becomes part of the cache key and of saved models."""
        self.image_preprocessing = preprocessing
        self._transform = None

    def ready_to_prepare(self) -> None:
        if self._transform is None:
            self._transform = self.image_preprocessing.transform()

    def prepare(self, item: Any) -> torch.Tensor:
        self.ready_to_prepare()
        assert self._transform is not None
        return self._transform(item)

    def collate(self, prepared: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(prepared))

    def normalize(self, batch: torch.Tensor) -> torch.Tensor:
        """A uint8 batch (as `prepare` + `collate` make it) scaled to [0, 1] and normalised with the backbone's mean
        and std, on the batch's device; a float batch is taken as normalised already (e.g. after MixUp)."""
        if batch.dtype != torch.uint8:
            return batch
        pre = self.image_preprocessing
        mean = torch.tensor(pre.mean, device=batch.device).view(1, -1, 1, 1) * 255.0
        std = torch.tensor(pre.std, device=batch.device).view(1, -1, 1, 1) * 255.0
        return (batch.float() - mean) / std

    def place(self, device: torch.device | str, *, half_precision: bool = False) -> None:
        self.memory_format = preferred_memory_format(torch.device(device), half_precision)
        self.module.to(device=device, memory_format=self.memory_format)

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        x = self.normalize(batch).contiguous(memory_format=self.memory_format)
        return self._forward_embed(self.module, x)

    def batch_size_of(self, batch: torch.Tensor) -> int:
        return batch.shape[0]

    def source_logits(self, batch: torch.Tensor) -> torch.Tensor | None:
        if self._forward_logits is None:
            return None
        return self._forward_logits(self.module, self.normalize(batch).contiguous(memory_format=self.memory_format))

    @property
    def classifies_features(self) -> bool:
        """Whether `source_logits_of_features` applies: the source classifier reads the embeddings themselves."""
        return self._logits_of_features is not None

    def source_logits_of_features(self, features: torch.Tensor) -> torch.Tensor | None:
        """The source classifier applied to `embed`'s output, where it reads exactly that; else None."""
        if self._logits_of_features is None:
            return None
        self.module.eval()
        with torch.inference_mode():
            return self._logits_of_features(self.module, features.to(next(self.module.parameters()).device))


def preferred_memory_format(device: torch.device, half_precision: bool) -> torch.memory_format:
    """The layout convolutions run fastest in: channels_last on the CPU (EfficientNet-Lite0 1.4x faster here for a
    training step and for inference, `benchmarks/layout.py`) and for 16-bit convolutions on GPUs (tensor cores); the
    plain layout for float32 on GPUs, where cuDNN's channels_last kernels for depthwise and grouped convolutions can
    be many times slower (pytorch#34977); fastai, and timm's train script without --channels-last, train float32 in
    it. `benchmarks/layout.py --device cuda` checks this on a GPU."""
    if device.type == "cpu" or half_precision:
        return torch.channels_last
    return torch.contiguous_format


class TextBackbone(Backbone):
    """A text encoder: `tokenize(texts)` gives a dict of tensors, `forward_embed(module, tokens)` gives (B, D).

    `tokenizer` is the Hugging Face tokenizer behind `tokenize`, where there is one (masked-LM pretraining needs it);
    `load_tokenizer` gives it lazily, on first access."""

    modality = "text"

    def __init__(
        self,
        spec: str,
        module: ModuleOrBuilder,
        *,
        embed_dim: int,
        weights_id: str,
        preprocessing: TextPreprocessing,
        tokenize: Callable[[list[str]], dict[str, torch.Tensor]],
        forward_embed: Callable[[nn.Module, dict[str, torch.Tensor]], torch.Tensor],
        load_tokenizer: Callable[[], Any] | None = None,
    ) -> None:
        super().__init__(spec, module, embed_dim=embed_dim, weights_id=weights_id)
        self.text_preprocessing = preprocessing
        self._tokenize = tokenize
        self._forward_embed = forward_embed
        self._tokenizer: Any = None
        self._load_tokenizer = load_tokenizer

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None and self._load_tokenizer is not None:
            self._tokenizer, self._load_tokenizer = self._load_tokenizer(), None
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, tokenizer: Any) -> None:
        self._tokenizer, self._load_tokenizer = tokenizer, None

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.text_preprocessing.to_json()

    def prepare(self, item: Any) -> str:
        if not isinstance(item, str):
            raise TypeError(f"a text backbone needs strings, got {type(item).__name__}")
        return item.lower() if self.text_preprocessing.lowercase else item

    def collate(self, prepared: Sequence[str]) -> dict[str, torch.Tensor]:
        return self._tokenize(list(prepared))

    def embed(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self._forward_embed(self.module, batch)

    def batch_size_of(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["input_ids"].shape[0])


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Average token states over real (non-padding) tokens."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)


def file_weights_id(*paths: Any) -> str:
    """Identify weight files by name, size and modification time (cheap; content hashing is the cache's job)."""
    from pathlib import Path

    parts = []
    for p in paths:
        st = Path(p).stat()
        parts.append(f"{Path(p).resolve()}:{st.st_size}:{int(st.st_mtime)}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]
