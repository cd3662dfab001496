"""Which parameters train, in which stage, at which learning rate.

- `finetune`: everything trains; the backbone at `lr * backbone_lr_mult`, the head at `lr`.
- `gradual`: fastai's `fine_tune`: `freeze_epochs` with the backbone frozen (head at `lr`), then everything at
  discriminative rates spaced geometrically from `(lr/2)/lr_mult` (the input side) to `lr/2` (the head).
- `layer-decay`: the backbone's layer groups at `lr * backbone_lr_mult * layer_decay**k`, k counting groups down
  from the top (as in BEiT / ELECTRA), the head at `lr`.
- `lora`: PEFT's LoRA adapters in the backbone's linear layers train (at `lr * backbone_lr_mult`), the rest stays.

Each stage is a one-cycle schedule (warm-up then cosine annealing), a pure function of the step, so nothing about
the schedule needs saving in a checkpoint.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
from torch import nn

from headstart.errors import HeadstartError
from headstart.finetune.config import FinetuneConfig


@dataclass(frozen=True)
class Stage:
    name: str
    first_epoch: int
    epochs: int
    train_backbone: bool
    warmup: float
    div: float  # the schedule starts at lr/div
    div_final: float = 1e5  # ... and ends at lr/div_final


def plan_stages(config: FinetuneConfig) -> list[Stage]:
    s, loop = config.strategy, config.loop
    if s.strategy == "gradual":
        frozen = Stage("frozen", 0, s.freeze_epochs, train_backbone=False, warmup=0.99, div=25.0)
        return [frozen, Stage("unfrozen", s.freeze_epochs, loop.epochs, True, warmup=loop.warmup, div=5.0)]
    return [Stage(s.strategy, 0, loop.epochs, train_backbone=True, warmup=loop.warmup, div=25.0)]


def stage_of(stages: list[Stage], epoch: int) -> Stage:
    return next(st for st in reversed(stages) if epoch >= st.first_epoch)


def one_cycle(step: int, total: int, stage: Stage) -> float:
    """The LR factor (of each group's top rate) at `step` of `total`: cosine from 1/div up to 1, then down."""
    pct = step / max(1, total)
    if pct < stage.warmup:
        start, end, t = 1.0 / stage.div, 1.0, pct / stage.warmup
    else:
        start, end, t = 1.0, 1.0 / stage.div_final, (pct - stage.warmup) / max(1e-8, 1.0 - stage.warmup)
    return end + (start - end) * (1 + math.cos(math.pi * min(1.0, t))) / 2


def layer_groups(module: nn.Module, trainable: set[str]) -> list[list[str]]:
    """The backbone's parameter names grouped by depth, from the input to the output.

    The repeated blocks are found by name: the first dotted prefix followed by at least two distinct integers
    (`blocks.3`, `encoder.layer.5`, `features.7`) numbers the groups; parameters before the first block form the
    stem group (embeddings, first convolution), those after the last block the top group (final norm, pooler).
    """
    names = [n for n, _ in module.named_parameters() if n in trainable]
    indices: dict[str, set[int]] = {}
    for name in names:
        for prefix, idx in _numbered(name):
            indices.setdefault(prefix, set()).add(idx)
    prefix = next((p for name in names for p, _ in _numbered(name) if len(indices[p]) >= 2), None)
    if prefix is None:
        return [names] if names else []
    stem, top, blocks = [], [], {}
    for name in names:
        idx = dict(_numbered(name)).get(prefix)
        if idx is not None:
            blocks.setdefault(idx, []).append(name)
        elif blocks:
            top.append(name)
        else:
            stem.append(name)
    groups = [stem] + [blocks[i] for i in sorted(blocks)] + [top]
    return [g for g in groups if g]


def _numbered(name: str) -> list[tuple[str, int]]:
    parts = name.split(".")
    return [(".".join(parts[:i]), int(p)) for i, p in enumerate(parts) if re.fullmatch(r"\d+", p)]


def param_groups(
    net: nn.Module, encoder: nn.Module, trainable: set[str], stage: Stage, config: FinetuneConfig
) -> list[dict]:
    """AdamW parameter groups for `stage`: each with its top `lr`; no weight decay on biases and norms.

    With L2-SP, backbone weights decay toward their pretrained values through the loss instead of toward zero.
    """
    s, loop, reg = config.strategy, config.loop, config.regularisation
    head_weights = [(n, p) for n, p in net.named_parameters() if not n.startswith("encoder.") and p.requires_grad]
    named = dict(encoder.named_parameters())
    groups: list[tuple[float, list[tuple[str, nn.Parameter]]]] = []
    if stage.train_backbone:
        depth = layer_groups(encoder, trainable)
        if s.strategy == "gradual":
            base = loop.lr / 2
            rates = [base / s.lr_mult * s.lr_mult ** (i / len(depth)) for i in range(len(depth) + 1)]
            groups += [(rate, [(n, named[n]) for n in g]) for rate, g in zip(rates, depth)]
            groups.append((rates[-1], head_weights))
        elif s.strategy == "layer-decay":
            top = loop.lr * s.backbone_lr_mult
            groups += [
                (top * s.layer_decay ** (len(depth) - 1 - i), [(n, named[n]) for n in g]) for i, g in enumerate(depth)
            ]
            groups.append((loop.lr, head_weights))
        else:
            groups.append((loop.lr * s.backbone_lr_mult, [(n, named[n]) for g in depth for n in g]))
            groups.append((loop.lr, head_weights))
    else:
        groups.append((loop.lr, head_weights))
    out = []
    for rate, params in groups:
        in_backbone = params is not head_weights
        decay = 0.0 if (in_backbone and reg.l2sp > 0) else reg.weight_decay
        plain = [p for n, p in params if p.ndim <= 1]
        weights = [p for n, p in params if p.ndim > 1]
        if weights:
            out.append({"params": weights, "lr": rate, "weight_decay": decay, "top_lr": rate})
        if plain:
            out.append({"params": plain, "lr": rate, "weight_decay": 0.0, "top_lr": rate})
    return out


def set_schedule(optimizer: torch.optim.Optimizer, factor: float) -> None:
    for group in optimizer.param_groups:
        group["lr"] = group["top_lr"] * factor


def add_lora(encoder: nn.Module, config: FinetuneConfig) -> None:
    """Inject LoRA adapters into the backbone in place (PEFT's low-level API) and freeze everything else."""
    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise HeadstartError(
            "strategy lora needs the package peft (pip install peft); it is not installed here"
        ) from None
    s = config.strategy
    targets = s.lora_targets or sorted(
        {n.rsplit(".", 1)[-1] for n, m in encoder.named_modules() if isinstance(m, nn.Linear)}
    )
    if not targets:
        raise HeadstartError("strategy lora needs a backbone with linear layers (a transformer); this one has none")
    lora = LoraConfig(r=s.lora_r, lora_alpha=s.lora_alpha, lora_dropout=s.lora_dropout, target_modules=targets)
    inject_adapter_in_model(lora, encoder)
    for name, p in encoder.named_parameters():
        p.requires_grad_("lora_" in name)


def merge_lora(encoder: nn.Module) -> None:
    """Fold LoRA adapters into the weights they adapt and put the plain layers back, so the backbone has its
    original architecture (and a bundle loads it with `strict=True`)."""
    from peft.tuners.lora import LoraLayer

    for name, module in list(encoder.named_modules()):
        if isinstance(module, LoraLayer):
            module.merge()
            parent_name, _, child = name.rpartition(".")
            parent = encoder.get_submodule(parent_name) if parent_name else encoder
            setattr(parent, child, module.get_base_layer())
