"""Fine-tuning settings: one dataclass per concern, resolved from flat keyword options and saved beside every run.

`FinetuneConfig.from_options(epochs=3, l2sp=0.01, devices=2)` routes each option to the dataclass that owns it, so
the Python API, the CLI and the saved `finetune-config.json` all speak the same field names.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

from headstart.errors import HeadstartError
from headstart.training.settings import DistributedConfig

STRATEGIES = ("finetune", "gradual", "layer-decay", "lora")
AUGMENT_LEVELS = ("none", "light", "strong")


# The schedule sized to the data, when `epochs` / `val_size` are not given (`FinetuneConfig.sized_to`). A fixed
# number of epochs is a different amount of training for 80 items (2 full batches of 32 an epoch) and for 8,000
# (250): five epochs of 80 photos, 12 of them held out, were 10 optimizer steps, too few for the backbone to move, so
# few-label fine-tuning stayed at the probe. Like BiT's HyperRule (Kolesnikov et al. 2020), a small set trains for a
# number of steps instead, within a range of epochs (a large set keeps the fewest), and per modality:
# - images: 300 steps, the backbone at 0.3 x the head's learning rate. EfficientNet-Lite0, 20 labels per class,
#   seeds 0-2, benchmarks/finetune_recipe.py (fashion and digits at 64 px, solar cells at 128 px), accuracy:
#   probe 0.756 / 0.879 / 0.514; 100 steps at 0.1 x (the first sized schedule) 0.779 / 0.939 / 0.458; 300 steps at
#   0.3 x 0.803 / 0.973 / 0.487 (solar balanced accuracy 0.452 / 0.463 / 0.470). Both halves helped on their own.
# - text and audio: 100 steps at 0.1 x, as first measured; transformer encoders take smaller steps than CNNs.
@dataclass(frozen=True)
class SizedSchedule:
    min_steps: int  # optimizer steps the schedule reaches at least ...
    min_epochs: int  # ... in at least this many epochs ...
    max_epochs: int  # ... and at most this many
    backbone_lr_mult: float  # when `backbone_lr_mult` is not given


SIZED: dict[str, SizedSchedule] = {
    "image": SizedSchedule(min_steps=300, min_epochs=5, max_epochs=100, backbone_lr_mult=0.3),
    "text": SizedSchedule(min_steps=100, min_epochs=5, max_epochs=50, backbone_lr_mult=0.1),
    "audio": SizedSchedule(min_steps=100, min_epochs=5, max_epochs=50, backbone_lr_mult=0.1),
}
# A validation part that picks the epoch needs enough items to tell epochs apart: 12 of 80 items cannot (one item is
# 8 points), and holding them out costs the training set 15%. Below this many validation items, no validation
# part: the fixed schedule runs to its end.
VAL_FRACTION, MIN_VAL_ITEMS = 0.15, 100


@dataclass
class LoopConfig:
    """The training loop itself."""

    epochs: int | None = None  # None: sized to the data (`FinetuneConfig.sized_to`)
    lr: float = 2e-3  # the head's learning rate and the top of every schedule (fastai's fine_tune default)
    batch_size: int = 32  # items per forward pass (per process)
    accumulate: int = 1  # optimizer step every N batches: an effective batch of batch_size x N in one batch's memory
    seed: int = 0
    # fraction of the training items held out (stratified) for validation; 0 turns it off; None: sized to the data
    val_size: float | None = None
    num_workers: int | None = None  # DataLoader workers; None: 1 for images on small machines, 0 for text
    grad_clip: float | None = 1.0
    warmup: float = 0.25  # fraction of each stage spent warming the learning rate up (one-cycle)
    precise_bn: int = 512  # recompute trained BatchNorm statistics on up to N training items before evaluating; 0: off


@dataclass
class HeadConfig:
    """The task heads: `linear` is softmax(W f + b); `mlp` is Dense(hidden, relu) -> dropout -> softmax."""

    head: str = "linear"
    hidden: int = 1024
    dropout: float | None = None  # None: 0.0 before a linear head, 0.5 inside an MLP head
    init: str = "probe"  # linear heads: "probe" starts from logistic regression on pretrained features (LP-FT); "zero"


@dataclass
class StrategyConfig:
    """Which parameters train, and at which learning rate."""

    strategy: str = "finetune"
    # backbone LR = lr * this (finetune, layer-decay, lora); None: the modality's (SIZED), 0.3 images, 0.1 otherwise
    backbone_lr_mult: float | None = None
    freeze_epochs: int = 1  # gradual: epochs of head-only training before unfreezing (added to `epochs`)
    lr_mult: int = 100  # gradual: input-side layers train at (lr/2)/lr_mult, the head at lr/2 (fastai's fine_tune)
    layer_decay: float = 0.75  # layer-decay: each layer group toward the input gets this factor more
    # backbone BatchNorms keep their statistics (their affine weights still train); None: frozen for pretrained
    # weights, trained for a random-init backbone. Batch statistics of a few images from another domain than the
    # pretraining data change every feature at the first step (digits, 10 per class, EfficientNet-Lite0 at 32 px,
    # 5 epochs: 0.22 test accuracy with BatchNorm trained, 0.84 frozen).
    freeze_bn: bool | None = None
    lora_r: int = 8
    lora_alpha: int = 16
    lora_dropout: float = 0.1
    lora_targets: list[str] | None = None  # module names to adapt; None: every nn.Linear of the backbone


@dataclass
class RegularisationConfig:
    """The remedies for overfitting."""

    weight_decay: float = 0.01
    label_smoothing: float = 0.0
    l2sp: float = 0.0  # alpha of L2-SP: alpha/2 * ||w - w_pretrained||^2 on the backbone (Li et al. 2018)
    class_weight: str | None = None  # "balanced": weight classes inversely to their frequency
    patience: int | None = None  # early stopping: epochs without a better validation score; None trains them all
    restore_best: bool = True  # end with the weights of the best validation epoch
    task_weights: dict[str, float] | None = None  # multitask: loss weight per label column (default 1 each)


@dataclass
class AugmentConfig:
    """Training-time augmentation: torchvision v2 for images, word dropout for text."""

    augment: str = "light"
    hflip: bool = True
    mixup: float = 0.0  # MixUp alpha; > 0 turns it on (images, one task)
    cutmix: float = 0.0  # CutMix alpha; > 0 turns it on (images, one task)
    word_dropout: float | None = None  # None: 0.1 for light, 0.2 for strong


@dataclass
class FinetuneConfig:
    loop: LoopConfig = field(default_factory=LoopConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    strategy: StrategyConfig = field(default_factory=StrategyConfig)
    regularisation: RegularisationConfig = field(default_factory=RegularisationConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    @classmethod
    def from_options(cls, **options: Any) -> FinetuneConfig:
        """Route each flat option to the concern that owns it; unknown names and bad values raise."""
        parts = {f.name: f.type for f in fields(cls)}
        owners = {name: part for part in _PARTS.values() for name in _field_names(part)}
        unknown = sorted(set(options) - set(owners))
        if unknown:
            raise HeadstartError(
                f"unknown fine-tuning option(s): {', '.join(unknown)}; known: {', '.join(sorted(owners))}"
            )
        built = {
            name: _PARTS[name](**{k: v for k, v in options.items() if owners[k] is _PARTS[name]}) for name in parts
        }
        config = cls(**built)
        config.validate()
        return config

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> FinetuneConfig:
        return cls(**{name: _PARTS[name](**data.get(name, {})) for name in _PARTS})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def flat(self) -> dict[str, Any]:
        return {k: v for part in self.to_json().values() for k, v in part.items()}

    def validate(self) -> None:
        s, a, h, r = self.strategy, self.augment, self.head, self.regularisation
        checks = [
            (
                s.strategy in STRATEGIES,
                f"strategy must be one of {', '.join(STRATEGIES)} (or probe), not {s.strategy!r}",
            ),
            (a.augment in AUGMENT_LEVELS, f"augment must be one of {', '.join(AUGMENT_LEVELS)}, not {a.augment!r}"),
            (h.head in ("linear", "mlp"), f"head must be linear or mlp, not {h.head!r}"),
            (h.init in ("probe", "zero"), f"init must be probe or zero, not {h.init!r}"),
            (self.loop.epochs is None or self.loop.epochs >= 1, "epochs must be at least 1"),
            (self.loop.lr > 0, "lr must be positive"),
            (self.loop.batch_size >= 2, "batch_size must be at least 2 (BatchNorm needs 2 items)"),
            (self.loop.accumulate >= 1, "accumulate must be at least 1"),
            (self.loop.val_size is None or 0.0 <= self.loop.val_size < 0.9, "val_size must lie in [0, 0.9)"),
            (0.0 < s.layer_decay <= 1.0, "layer_decay must lie in (0, 1]"),
            (s.backbone_lr_mult is None or s.backbone_lr_mult > 0, "backbone_lr_mult must be positive"),
            (r.class_weight in (None, "balanced"), "class_weight must be None or 'balanced'"),
            (0.0 <= r.label_smoothing < 1.0, "label_smoothing must lie in [0, 1)"),
            (r.patience is None or r.patience >= 1, "patience must be at least 1"),
        ]
        for ok, message in checks:
            if not ok:
                raise HeadstartError(message)

    def sized_to(self, n_items: int, world_size: int = 1, modality: str = "image") -> FinetuneConfig:
        """This config with what was left to the data decided for `n_items` training items of `modality`.

        val_size: VAL_FRACTION when that holds at least MIN_VAL_ITEMS items (or `patience` asks for early
        stopping), else 0. epochs: enough for the modality's `min_steps` optimizer steps on what remains, within its
        `min_epochs` to `max_epochs` (so a large set keeps `min_epochs`). backbone_lr_mult: the modality's.
        Given values are kept as they are."""
        from headstart.training.batches import epoch_batches

        rule = sized_rule(modality)
        loop = self.loop
        val_size = loop.val_size
        if val_size is None:
            wanted = self.regularisation.patience is not None or n_items * VAL_FRACTION >= MIN_VAL_ITEMS
            val_size = VAL_FRACTION if wanted else 0.0
        epochs = loop.epochs
        if epochs is None:
            n_fit = max(1, n_items - int(round(n_items * val_size)))
            batch = loop.batch_size * loop.accumulate
            steps = len(epoch_batches(n_fit, batch, seed=0, epoch=0, rank=0, world_size=world_size))
            epochs = min(rule.max_epochs, max(rule.min_epochs, math.ceil(rule.min_steps / max(1, steps))))
        mult = self.strategy.backbone_lr_mult
        strategy = replace(self.strategy, backbone_lr_mult=rule.backbone_lr_mult if mult is None else mult)
        return replace(self, loop=replace(loop, epochs=epochs, val_size=val_size), strategy=strategy)

    @property
    def unsized(self) -> bool:
        """Whether something is still left to the data (`sized_to` decides it)."""
        return self.loop.epochs is None or self.loop.val_size is None or self.strategy.backbone_lr_mult is None

    @property
    def total_epochs(self) -> int:
        if self.loop.epochs is None:
            raise HeadstartError("the schedule is not sized yet: call FinetuneConfig.sized_to(n_items) first")
        extra = self.strategy.freeze_epochs if self.strategy.strategy == "gradual" else 0
        return self.loop.epochs + extra


def sized_rule(modality: str) -> SizedSchedule:
    """The sized schedule of `modality` (image, text, audio); another modality gets the text one."""
    return SIZED.get(modality, SIZED["text"])


_PARTS: dict[str, type] = {
    "loop": LoopConfig,
    "head": HeadConfig,
    "strategy": StrategyConfig,
    "regularisation": RegularisationConfig,
    "augment": AugmentConfig,
    "distributed": DistributedConfig,
}


def _field_names(part: type) -> list[str]:
    return [f.name for f in fields(part)]


def option_names() -> list[str]:
    """Every flat option `from_options` accepts."""
    return sorted(name for part in _PARTS.values() for name in _field_names(part))
