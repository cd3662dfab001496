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

After each epoch the framework reduces the logged sums over processes, appends a row to `job.history`
(`epoch`, `loss`, any other logged values, `samples`, `seconds`, `samples_per_s`) and writes an atomic checkpoint
(every module's state, every optimizer's state, the torch/Python/NumPy random states, the history). Random numbers
drawn from `epoch.generator` (seeded by run seed, epoch and process) are the same whether or not the run was
resumed, so a resumed run ends with the same loss as an uninterrupted one.

`Pretrained.architecture` is a spec that `create_backbone(architecture + "?init=random")` rebuilds exactly (same
module structure), so `local:OUT` can load `backbone.safetensors` into it with `strict=True`.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headstart.backbones.base import Backbone, ImageBackbone
from headstart.data.dataset import Dataset
from headstart.errors import HeadstartError

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_STATE = "checkpoint.json"
FIGURES_DIR = "figures"
MAX_IMAGE_BYTES = 8 << 30  # decoded training images held in memory
BAR_REFRESH_S = 1.0  # the progress bar reads the loss sums from the device at most this often


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
    `out` the folder for figures written during training (they end up in the run folder)."""

    data: Dataset
    backbone: str | None
    settings: Settings
    fabric: Any
    checkpoints: Checkpointer
    out: Path
    progress: bool = True
    stop_after: int | None = None  # stop (as if interrupted) after this many epochs in this call
    history: list[dict[str, Any]] = field(default_factory=list)
    stopped: bool = False

    @property
    def options(self) -> dict[str, Any]:
        return self.settings.options

    @property
    def rank(self) -> int:
        return int(self.fabric.global_rank)

    def loop(self, modules: dict[str, torch.nn.Module], optimizers: dict[str, Any]) -> Iterator[Epoch]:
        """The epochs still to run: restores `modules` and `optimizers` from a checkpoint on resume; after each
        epoch logs a history row and checkpoints them."""
        fabric, s = self.fabric, self.settings
        start, history = self.checkpoints.restore(modules, optimizers)
        self.history[:] = history
        if start == 0:
            torch.manual_seed(s.seed + 1000 * self.rank)
        ran = 0
        board = None  # TensorBoard scalars beside the figures, when tensorboard is installed (rank 0)
        try:
            for index in range(start, s.epochs):
                if self.stop_after is not None and ran >= self.stop_after:
                    self.stopped = True
                    return
                epoch = Epoch(index, s, fabric, self.progress and self.rank == 0)
                yield epoch
                self.history.append(epoch.summary())
                self.checkpoints.save(index + 1, self.history, modules, optimizers)
                if self.rank == 0:
                    from headstart.finetune.outputs import TensorBoardLog

                    board = board or TensorBoardLog(self.out.parent)
                    board.epoch(self.history[-1])
                ran += 1
        finally:
            if board is not None:
                board.close()

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


class Epoch:
    """One epoch of a method's loop: its batches, its random numbers, its progress bar and its logged sums."""

    def __init__(self, index: int, settings: Settings, fabric: Any, show: bool) -> None:
        self.index, self.number = index, index + 1
        self.settings, self.fabric, self.show = settings, fabric, show
        self.seed = settings.seed * 7919 + index * 104729 + int(fabric.global_rank) * 15485863
        self.generator = torch.Generator(device=fabric.device).manual_seed(self.seed)
        self.sums: dict[str, float] = {}
        self.count = 0
        self._bar: Any = None
        self._started = self._shown = time.perf_counter()

    def batches(self, n: int, batch_size: int | None = None, *, on_device: bool = True) -> list[torch.Tensor]:
        """This process's batches of item indices (a seeded permutation; the last short batch dropped), on the
        device to index tensors there, or (`on_device=False`) on the host to index Python lists without a wait."""
        from headstart.finetune.data import epoch_batches

        f = self.fabric
        rows = epoch_batches(
            n,
            batch_size or self.settings.batch_size,
            seed=self.settings.seed,
            epoch=self.index,
            rank=f.global_rank,
            world_size=f.world_size,
        )
        return [torch.tensor(b, device=f.device if on_device else "cpu") for b in rows]

    def track(self, iterable: Iterable[Any], total: int | None = None) -> Iterator[Any]:
        from tqdm.auto import tqdm

        total = total if total is not None else len(iterable)  # type: ignore[arg-type]
        desc = f"epoch {self.number}/{self.settings.epochs}"
        self._bar = tqdm(iterable, total=total, desc=desc, unit="batch", disable=not self.show, dynamic_ncols=True)
        yield from self._bar

    def log(self, loss: float | torch.Tensor, n: int, **values: float | torch.Tensor) -> None:
        """Add one batch: its mean `loss` (and other values) over `n` items. Tensors are summed where they are
        (reading one every step would make the CPU wait for the GPU); the bar reads the sums about once a second."""
        self.count += n
        for key, value in {"loss": loss, **values}.items():
            term = value.detach().float() * n if isinstance(value, torch.Tensor) else float(value) * n
            self.sums[key] = self.sums.get(key, 0.0) + term
        if self._bar is not None and self.count and time.perf_counter() - self._shown >= BAR_REFRESH_S:
            self._bar.set_postfix(loss=f"{float(self.sums['loss']) / self.count:.4f}")
            self._shown = time.perf_counter()

    def summary(self) -> dict[str, Any]:
        keys = sorted(self.sums)
        local = torch.tensor([float(self.sums[k]) for k in keys] + [float(self.count)], dtype=torch.float64)
        total = self.fabric.all_reduce(local, reduce_op="sum") if self.fabric.world_size > 1 else local
        total = total.cpu()
        seconds = time.perf_counter() - self._started
        count = float(total[-1])
        row: dict[str, Any] = {"epoch": self.number}
        row.update({k: float(total[i]) / max(count, 1.0) for i, k in enumerate(keys)})
        row.update(
            {"samples": int(count), "seconds": round(seconds, 3), "samples_per_s": round(count / max(seconds, 1e-6), 1)}
        )
        if self._bar is not None:
            self._bar.set_postfix(loss=f"{row.get('loss', float('nan')):.4f}")
            self._bar.close()
        if not math.isfinite(row.get("loss", 0.0)):
            raise PretrainError(
                f"pretraining diverged in epoch {self.number} (loss {row['loss']}); try a lower --lr, or "
                "--precision 32-true"
            )
        return row


class Checkpointer:
    """Atomic per-epoch checkpoints in `folder`: `state-E.safetensors` (modules, optimizers' tensors, each
    process's torch random state) and `checkpoint.json` (written last; epoch, history, settings, optimizer scalars,
    Python and NumPy random states). A run killed at any moment leaves the previous checkpoint or the new one."""

    def __init__(self, folder: Path | None, config: dict[str, Any], fabric: Any, *, resume: bool) -> None:
        self.folder, self.config, self.fabric, self.resume = folder, config, fabric, resume
        self.resumed_at: int | None = None

    def restore(self, modules: dict[str, torch.nn.Module], optimizers: dict[str, Any]) -> tuple[int, list]:
        """Load the last checkpoint into `modules` and `optimizers`: (epochs done, history); (0, []) if none."""
        from safetensors.torch import load_file

        from headstart.finetune.checkpoint import unflatten_optimizer

        payload = read_checkpoint(self.folder) if (self.resume and self.folder is not None) else None
        if payload is None:
            return 0, []
        if payload["config"] != self.config:
            now, then = _flatten(self.config), _flatten(payload["config"])
            changed = sorted(k for k in {**now, **then} if now.get(k) != then.get(k))
            raise PretrainError(
                f"{self.folder}: the checkpoint was written with other settings ({', '.join(changed)}); "
                "resume with the same settings, or start over without --resume"
            )
        tensors = load_file(str(self.folder / payload["state_file"]))
        for name, module in modules.items():
            prefix = f"module/{name}/"
            module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        for name, optimizer in optimizers.items():
            prefix = f"optim/{name}/"
            flat = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
            optimizer.load_state_dict(unflatten_optimizer(flat, payload["optimizers"][name]))
        rank, world = int(self.fabric.global_rank), int(self.fabric.world_size)
        if payload["world_size"] == world:
            torch.set_rng_state(tensors["rng/torch"][rank].clone())
            version, internal, gauss = payload["rng"]["python"]
            random.setstate((version, tuple(internal), gauss))
            name, keys, pos, has_gauss, cached = payload["rng"]["numpy"]
            np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        else:
            torch.manual_seed(self.config["settings"]["seed"] + 1000 * rank + payload["epoch"])
        self.resumed_at = int(payload["epoch"])
        return int(payload["epoch"]), list(payload["history"])

    def save(
        self, epoch: int, history: list[dict[str, Any]], modules: dict[str, torch.nn.Module], optimizers: dict[str, Any]
    ) -> None:
        from safetensors.torch import save_file

        from headstart.finetune.checkpoint import _atomic_safetensors, _numpy_rng, _python_rng, flatten_optimizer
        from headstart.paths import atomic_file

        if self.folder is None:
            return
        f = self.fabric
        rng = f.all_gather(torch.get_rng_state()) if f.world_size > 1 else torch.get_rng_state()
        rng = rng.reshape(f.world_size, -1).cpu()
        if f.global_rank == 0:
            self.folder.mkdir(parents=True, exist_ok=True)
            tensors: dict[str, torch.Tensor] = {"rng/torch": rng}
            for name, module in modules.items():
                tensors.update({f"module/{name}/{k}": v for k, v in module.state_dict().items()})
            optim_json = {}
            for name, optimizer in optimizers.items():
                flat, optim_json[name] = flatten_optimizer(optimizer.state_dict())
                tensors.update({f"optim/{name}/{k}": v for k, v in flat.items()})
            state_file = f"state-{epoch}.safetensors"
            _atomic_safetensors(save_file, tensors, self.folder / state_file)
            payload = {
                "epoch": epoch,
                "state_file": state_file,
                "history": history,
                "optimizers": optim_json,
                "rng": {"python": _python_rng(), "numpy": _numpy_rng()},
                "world_size": int(f.world_size),
                "config": self.config,
            }
            with atomic_file(self.folder / CHECKPOINT_STATE) as out:
                json.dump(payload, out, indent=1)
            for old in self.folder.glob("state-*.safetensors"):
                if old.name != state_file:
                    old.unlink(missing_ok=True)
        if f.world_size > 1:
            f.barrier()


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def read_checkpoint(folder: Path | None) -> dict[str, Any] | None:
    if folder is None or not (folder / CHECKPOINT_STATE).is_file():
        return None
    try:
        return json.loads((folder / CHECKPOINT_STATE).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PretrainError(f"{folder / CHECKPOINT_STATE}: unreadable checkpoint ({exc})") from None


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
    from headstart.finetune.loop import place_backbone

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
