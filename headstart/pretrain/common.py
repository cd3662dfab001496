"""The contract between the pretraining framework (`run.py`) and the method modules (one file per objective).

A method module (registered in `headstart.pretrain.run.METHODS`) exposes:

- `train(job: PretrainJob) -> Pretrained` — the only function the framework calls;
- optionally `MODALITIES: tuple[str, ...]` (default `("image",)`), `OPTIONS: dict[str, object]` (the method's
  `--set KEY=VALUE` options with their defaults; values given are converted to the default's type, unknown names
  are refused before any work starts) and `DEFAULTS: dict[str, object]` (its own `epochs`, `batch_size`, `lr`).

`train` builds (or loads) the backbone, trains it with `job.fabric`, and returns it. The epoch loop is the
framework's, so every method resumes, logs and checkpoints the same way:

    net, opt = ...                                    # raw modules and optimizers
    model, opt = job.fabric.setup(net, opt)           # devices, DDP, precision: Fabric's
    for epoch in job.loop({"net": net}, {"opt": opt}):  # restores a checkpoint on --resume, skips done epochs
        for idx in epoch.track(epoch.batches(n)):     # this process's share, a progress bar
            x = images[idx]; noise = torch.randn(..., generator=epoch.generator, device=...)
            loss = ...; opt.zero_grad(); job.fabric.backward(loss); opt.step()
            epoch.log(loss.item(), len(idx), other_loss=...)  # summed per item, averaged per epoch
    return Pretrained(backbone, architecture=spec_string, history=job.history)

The loop is the training engine's (`headstart.training.epochs.EpochRunner`): after each epoch it reduces the logged
sums over processes, appends a row to `job.history` (`epoch`, `loss`, any other logged values, `samples`,
`seconds`, `samples_per_s`) and writes an atomic checkpoint (every module's state, every optimizer's state, the
torch/Python/NumPy random states, the history). Random numbers drawn from `epoch.generator` (seeded by run seed,
epoch and process) are the same whether or not the run was resumed, so a resumed run ends with the same loss as an
uninterrupted one.

`Pretrained.architecture` is a spec that `create_backbone(architecture + "?init=random")` rebuilds exactly (same
module structure), so `local:OUT` can load `backbone.safetensors` into it with `strict=True`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headstart.backbones.base import Backbone, ImageBackbone
from headstart.data.dataset import Dataset
from headstart.errors import HeadstartError
from headstart.training.epochs import Epoch, EpochRunner

CHECKPOINT_DIR = "checkpoint"
FIGURES_DIR = "figures"
MAX_IMAGE_BYTES = 8 << 30  # decoded training images held in memory


class PretrainError(HeadstartError):
    """A pretraining request that cannot run: unknown method, wrong modality, no data, mismatched resume, ..."""


@dataclass
class Settings:
    """The settings that define a pretraining run (a checkpoint only resumes under the same ones)."""

    method: str
    epochs: int
    batch_size: int
    lr: float
    seed: int
    options: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "epochs": self.epochs,
            "batch_size": self.batch_size,
            "lr": self.lr,
            "seed": self.seed,
            "options": dict(sorted(self.options.items())),
        }


@dataclass
class Pretrained:
    """What a method returns: the trained backbone (`backbone.module` holds the weights), the architecture spec
    that rebuilds it (`create_backbone(architecture + "?init=random")`), the per-epoch history, notes for the
    report, and any figures the method wrote (paths inside `job.out`)."""

    backbone: Backbone
    architecture: str
    history: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)


@dataclass
class PretrainJob:
    """Everything a method needs. `data` is the unlabelled pool (its labels, if any, are never read); `backbone`
    the `--backbone` spec to start from or to take the architecture from (None: the method's default);
    `out` the folder for figures written during training (they end up in the run folder); `runner` the engine's
    epoch runner (checkpoints, history, logs)."""

    data: Dataset
    backbone: str | None
    settings: Settings
    fabric: Any
    runner: EpochRunner
    out: Path
    resume: bool = False
    stop_after: int | None = None  # stop (as if interrupted) after this many epochs in this call
    stopped: bool = False

    @property
    def options(self) -> dict[str, Any]:
        return self.settings.options

    @property
    def rank(self) -> int:
        return int(self.fabric.global_rank)

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.runner.history

    def loop(self, modules: dict[str, torch.nn.Module], optimizers: dict[str, Any]) -> Iterator[Epoch]:
        """The epochs still to run: restores `modules` and `optimizers` from a checkpoint on resume; after each
        epoch logs a history row and checkpoints them."""
        runner = self.runner
        restored = runner.resume() if self.resume else None
        if restored is not None:
            restored.load_into(modules, optimizers)
        runner.seed()
        try:
            for ran, index in enumerate(range(runner.start, runner.epochs)):
                if self.stop_after is not None and ran >= self.stop_after:
                    self.stopped = True
                    return
                epoch = runner.epoch(index)
                yield epoch
                runner.end(epoch.summary(), modules, optimizers)
        finally:
            runner.close()

    def images(self, backbone: ImageBackbone, *, batch_size: int = 256) -> torch.Tensor:
        """Every item decoded with `backbone`'s preprocessing, as one (N, 3, H, W) float tensor on the device."""
        from headstart.features.extract import default_workers, iter_batches

        size = backbone.image_preprocessing.size
        need = len(self.data) * 3 * size * size * 4
        if need > MAX_IMAGE_BYTES:
            raise PretrainError(
                f"{len(self.data)} images at {size} px need {need / 2**30:.1f} GiB in memory; "
                "use a smaller size (?size=N on --backbone) or fewer images"
            )
        chunks = list(
            iter_batches(
                backbone,
                self.data.items,
                self.data.where,
                batch_size=batch_size,
                num_workers=default_workers(backbone) if len(self.data) > 2000 else 0,
            )
        )
        return backbone.normalize(self.fabric.to_device(torch.cat(chunks).contiguous()))


def architecture_of(spec: str) -> str:
    """The spec that rebuilds `spec`'s architecture: `init` dropped; for `local:DIR`, the folder's own architecture."""
    from headstart.backbones.base import BackboneSpec

    parsed = BackboneSpec.parse(spec)
    if parsed.prefix == "local":
        from headstart.backbones.local_source import read_manifest

        section = read_manifest(Path(parsed.name).expanduser()).get("backbone") or {}
        if "spec" not in section:
            raise PretrainError(f"{parsed.name}: no backbone section to continue from")
        parsed = BackboneSpec.parse(section["spec"])
    options = {k: v for k, v in parsed.options.items() if k != "init"}
    return str(BackboneSpec(parsed.prefix, parsed.name, options))


def with_options(spec: str, **options: Any) -> str:
    """`spec` with these options set (existing ones kept unless overridden)."""
    from headstart.backbones.base import BackboneSpec

    parsed = BackboneSpec.parse(spec)
    return str(BackboneSpec(parsed.prefix, parsed.name, {**parsed.options, **{k: str(v) for k, v in options.items()}}))


def image_side(data: Dataset) -> int | None:
    """The common side of in-memory square images (e.g. 8 for digits), else None."""
    shapes = {np.asarray(i).shape[:2] for i in data.items[:256] if isinstance(i, np.ndarray)}
    if len(shapes) == 1:
        (h, w) = shapes.pop()
        if h == w:
            return int(h)
    return None


def require_image_backbone(backbone: Backbone, method: str) -> ImageBackbone:
    if not isinstance(backbone, ImageBackbone):
        raise PretrainError(
            f"{method} pretraining needs an image backbone; {backbone.spec} is a {backbone.modality} one"
        )
    return backbone


def start_backbone(job: PretrainJob, default_architecture: str, method: str) -> tuple[ImageBackbone, str]:
    """The image backbone to train and the architecture spec to save: `job.backbone` as given (pretrained weights
    continued, or `?init=random`), else `default_architecture` at random init seeded by the run's seed."""
    from headstart.backbones.registry import create_backbone

    if job.backbone:
        backbone = create_backbone(job.backbone)
        architecture = architecture_of(job.backbone)
    else:
        backbone = create_backbone(with_options(default_architecture, init="random", seed=job.settings.seed))
        architecture = default_architecture
    from headstart.training.fabric import place_backbone

    image_backbone = require_image_backbone(backbone, method)
    place_backbone(image_backbone, job.fabric)
    return image_backbone, architecture


def unit_range(backbone: ImageBackbone, x: torch.Tensor) -> torch.Tensor:
    """Normalised images back to pixel values in [0, 1]."""
    pre = backbone.image_preprocessing
    mean = torch.tensor(pre.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    return (x * std + mean).clamp(0, 1)


def grid_png(images: torch.Tensor, path: Path, title: str, nrow: int = 8) -> Path:
    """A grid of images in [0, 1] (B, C, H, W) as a PNG."""
    from headstart.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    imgs = images.detach().float().cpu().clamp(0, 1)
    b, c, h, w = imgs.shape
    rows = (b + nrow - 1) // nrow
    canvas = torch.ones(c, rows * (h + 1) + 1, nrow * (w + 1) + 1)
    for i in range(b):
        r, k = divmod(i, nrow)
        canvas[:, 1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + k * (w + 1) : 1 + k * (w + 1) + w] = imgs[i]
    fig, ax = plt.subplots(figsize=(nrow * 0.6 + 0.4, rows * 0.6 + 0.6))
    ax.imshow(canvas.permute(1, 2, 0).numpy().squeeze(), cmap="gray" if c == 1 else None, vmin=0, vmax=1)
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
