"""The network that trains: the backbone's module, then one head per task, and the losses around it.

Each head is `Sequential(BatchNorm1d without affine, core)`: features standardised with batch statistics while
training (robust to the backbone's features drifting as it trains, as fastai's heads do), with running statistics
that start from the pretrained features of (up to 512) training items. On export the running statistics become the
`Standardize` of a fitted `TorchHead`, so a trained head is a `LinearHead` / `MLPHead` of a normal bundle.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from headstart.backbones.base import Backbone
from headstart.finetune.config import FinetuneConfig
from headstart.heads import HEADS
from headstart.heads.base import TorchHead

STATS_ITEMS = 512


class FinetuneNet(nn.Module):
    def __init__(self, backbone: Backbone, heads: list[nn.Module], feature_dropout: float) -> None:
        super().__init__()
        self.encoder = backbone.module
        self.heads = nn.ModuleList(heads)
        self.dropout = nn.Dropout(feature_dropout)
        self.train_backbone = True
        self.freeze_bn = False  # keep every backbone BatchNorm's statistics (its affine weights may still train)
        self._backbone = backbone  # a plain object: its `embed` runs `self.encoder`, the same module

    def forward(self, batch: Any) -> list[torch.Tensor]:
        with torch.set_grad_enabled(torch.is_grad_enabled() and self.train_backbone):
            features = self._backbone.embed(batch)
        features = self.dropout(features.float())
        return [head(features) for head in self.heads]

    def set_train_mode(self) -> None:
        """Train mode, except where nothing trains: a frozen backbone, and every BatchNorm whose weights are frozen,
        keep their running statistics as they are."""
        self.train()
        if not self.train_backbone:
            self.encoder.eval()
            return
        for module in self.encoder.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                if self.freeze_bn or not any(p.requires_grad for p in module.parameters(recurse=False)):
                    module.eval()


def trained_batchnorms(net: FinetuneNet) -> list[nn.Module]:
    """The BatchNorm layers whose statistics train (in training mode after `set_train_mode`); leaves `net` so."""
    net.set_train_mode()
    return [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]


def recalibrate_batchnorm(net: FinetuneNet, forward: Any, batches: Any) -> int:
    """Precise BatchNorm: recompute the running statistics of every BatchNorm that trains (frozen ones keep theirs)
    as plain averages over `batches`, so evaluation does not depend on how far the running averages got.

    A few dozen steps on little data leave running statistics far from the features the weights now produce (a
    from-scratch backbone's most of all); this fixes that before each validation and at the end. Returns the
    number of BatchNorm layers recalibrated.
    """
    layers = trained_batchnorms(net)
    if not layers:
        return 0
    net.eval()
    momenta = [m.momentum for m in layers]
    for m in layers:
        m.reset_running_stats()
        m.momentum = None  # a cumulative (equal-weight) average over the batches
        m.train()
    with torch.no_grad():
        for x in batches:
            forward(x)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    net.eval()
    return len(layers)


def head_settings(config: FinetuneConfig) -> dict[str, Any]:
    h = config.head
    if h.head == "mlp":
        return {"hidden": h.hidden, "dropout": 0.5 if h.dropout is None else h.dropout}
    return {}


def build_net(
    backbone: Backbone, n_classes: list[int], mean: np.ndarray, scale: np.ndarray, config: FinetuneConfig
) -> FinetuneNet:
    """The network with fresh heads; each head's last layer starts at zero, so training starts from uniform
    predictions and the first gradients do not shake the backbone."""
    kind = config.head.head
    heads = []
    for n in n_classes:
        core = HEADS[kind](**head_settings(config))._build(backbone.embed_dim, n)
        last = core if isinstance(core, nn.Linear) else [m for m in core if isinstance(m, nn.Linear)][-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
        norm = nn.BatchNorm1d(backbone.embed_dim, affine=False)
        norm.running_mean.copy_(torch.as_tensor(mean))
        norm.running_var.copy_(torch.as_tensor(scale) ** 2)
        heads.append(nn.Sequential(norm, core))
    feature_dropout = (config.head.dropout or 0.0) if kind == "linear" else 0.0
    net = FinetuneNet(backbone, heads, feature_dropout)
    freeze = config.strategy.freeze_bn
    net.freeze_bn = not backbone.weights_id.startswith("random") if freeze is None else freeze
    return net


def pretrained_features(backbone: Backbone, items: list[Any], seed: int) -> tuple[list[int], np.ndarray]:
    """The backbone's features of up to STATS_ITEMS training items (a seeded choice) and which items they are."""
    from headstart.features.extract import extract_features

    rng = np.random.default_rng(seed)
    pick = sorted(rng.choice(len(items), size=min(STATS_ITEMS, len(items)), replace=False).tolist())
    return pick, extract_features(backbone, [items[i] for i in pick], cache=False, progress=False, num_workers=0)


def feature_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation per feature, as a fitted head's standardisation computes them."""
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-8] = 1.0
    return mean.astype(np.float32), scale.astype(np.float32)


def probe_init(net: FinetuneNet, x: np.ndarray, labels: dict[str, list[str]], classes: dict[str, list[str]]) -> None:
    """Start each linear head from a logistic regression on the pretrained features (LP-FT, Kumar et al. 2022):
    fine-tuning then begins from a good head, and the first gradients do not distort the pretrained features."""
    from headstart.heads import LinearHead

    for head, (task, y) in zip(net.heads, labels.items()):
        if len(set(y)) < 2 or not isinstance(head[1], nn.Linear):
            continue
        probe = LinearHead(scaling="standard").fit(x, y)  # its weights act on z-scores, as the BatchNorm gives
        weight, bias = probe.module_[1].weight.detach(), probe.module_[1].bias.detach()
        rows = [classes[task].index(str(c)) for c in probe.classes_]
        with torch.no_grad():
            head[1].weight[rows] = weight.to(head[1].weight.dtype)
            head[1].bias[rows] = bias.to(head[1].bias.dtype)


def used_parameters(net: FinetuneNet, batch: Any) -> set[str]:
    """Backbone parameters that receive a gradient from the embedding (not e.g. a source classifier or a pooler
    the embedding skips): the others never train, and DDP must not wait for their gradients."""
    was_training = net.training
    net.eval()
    for p in net.encoder.parameters():
        p.grad = None
    out = net(batch)
    sum(o.float().sum() for o in out).backward()
    used = {n for n, p in net.encoder.named_parameters() if p.grad is not None}
    net.zero_grad(set_to_none=True)
    net.train(was_training)
    return used


def export_heads(net: FinetuneNet, classes: dict[str, list[str]], config: FinetuneConfig) -> dict[str, TorchHead]:
    """The trained heads as fitted LinearHead / MLPHead estimators."""
    kind = config.head.head
    out = {}
    for (task, labels), head in zip(classes.items(), net.heads):
        norm, core = head[0], head[1]
        state = {f"1.{k}": v.detach().cpu().clone() for k, v in core.state_dict().items()}
        state["0.mean"] = norm.running_mean.detach().cpu().clone()
        state["0.scale"] = torch.sqrt(norm.running_var.detach().cpu() + norm.eps)
        out[task] = HEADS[kind].from_state(head_settings(config), labels, state)
    return out


class Objective:
    """Cross-entropy per task (class weights, label smoothing, soft MixUp targets), summed with task weights,
    plus the L2-SP penalty alpha/2 * ||w - w0||^2 over the trainable backbone weights."""

    def __init__(self, config: FinetuneConfig, tasks: list[str], class_weights: list[torch.Tensor | None]) -> None:
        reg = config.regularisation
        weights = reg.task_weights or {}
        self.task_weights = [float(weights.get(t, 1.0)) for t in tasks]
        self.class_weights = class_weights
        self.label_smoothing = reg.label_smoothing
        self.l2sp = reg.l2sp
        self.anchors: list[tuple[nn.Parameter, torch.Tensor]] = []

    def anchor(self, params: list[nn.Parameter]) -> None:
        """Remember the starting (pretrained) values of `params` for L2-SP."""
        if self.l2sp > 0:
            self.anchors = [(p, p.detach().clone()) for p in params]

    def __call__(self, logits: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
        total = logits[0].new_zeros((), dtype=torch.float32)
        for out, y, w, cw in zip(logits, targets, self.task_weights, self.class_weights):
            weight = cw.to(out.device) if cw is not None else None
            loss = nn.functional.cross_entropy(
                out.float(), y, weight=weight, label_smoothing=self.label_smoothing, ignore_index=-1
            )
            if y.dim() == 1:  # hard labels; -1 marks an item without a usable label for this task. Without any
                # in the batch the mean is 0/0: count it as 0 (a test on the device, not a wait for it)
                loss = torch.where((y >= 0).any(), loss, loss.new_zeros(()))
            total = total + w * loss
        if self.anchors:
            penalty = sum(((p - p0) ** 2).sum() for p, p0 in self.anchors if p.requires_grad)
            total = total + self.l2sp / 2 * penalty
        return total


def class_weights(labels: np.ndarray, n_classes: list[int], mode: str | None) -> list[torch.Tensor | None]:
    if mode != "balanced":
        return [None] * len(n_classes)
    out = []
    for j, k in enumerate(n_classes):
        y = labels[:, j][labels[:, j] >= 0]
        counts = np.bincount(y, minlength=k)
        out.append(torch.as_tensor(len(y) / (k * np.maximum(counts, 1)), dtype=torch.float32))
    return out
