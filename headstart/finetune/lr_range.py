"""The learning-rate range test (Smith 2015, as fastai's `lr_find`): raise the LR exponentially, batch by batch,
record the smoothed loss, stop when it explodes, and suggest the LR where the loss falls fastest."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from headstart.data import Dataset, load_data, split
from headstart.finetune.config import FinetuneConfig


def lr_find(
    data: Any,
    *,
    backbone: str | None = None,
    head: str = "linear",
    strategy: str = "finetune",
    batch_size: int = 32,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_it: int = 100,
    seed: int = 0,
    labels_per_class: int | None = None,
    test_size: float = 0.25,
    out: str | Path | None = None,
    progress: bool = True,
    **options: Any,
) -> dict[str, Any]:
    """Sweep the learning rate on the training split; `out` (a .png path) gets the loss-vs-LR plot.

    Returns the LRs and smoothed losses tried, `suggestion` (steepest descent) and `min_lr_over_10`. Each group's
    rate keeps its ratio to `lr` as the strategy sets it (the backbone below the head, layer decay, ...).
    """
    import torch

    from headstart.backbones import create_backbone
    from headstart.finetune.augment import train_transform
    from headstart.finetune.data import EpochBatches, Tasks, TrainItems, epoch_batches, loader
    from headstart.finetune.loop import make_fabric, place_backbone, prepare_net
    from headstart.finetune.net import Objective, class_weights
    from headstart.finetune.strategies import param_groups, plan_stages

    config = FinetuneConfig.from_options(head=head, strategy=strategy, batch_size=batch_size, seed=seed, **options)
    fabric = make_fabric(config)
    ds = data if isinstance(data, Dataset) else load_data(data)
    train, _ = split(ds, test_size=test_size, seed=seed, labels_per_class=labels_per_class)
    if backbone is None:
        from headstart.backbones.registry import default_backbone

        backbone = default_backbone(ds.modality)
    bb = create_backbone(backbone)
    tasks = Tasks.from_dataset(train)
    net, trainable = prepare_net(bb, train, tasks, config)
    y = tasks.encode(train)
    objective = Objective(config, tasks.names, class_weights(y, [len(c) for c in tasks.classes.values()], None))
    stage = plan_stages(config)[0]
    net.train_backbone = stage.train_backbone
    for name, p in net.encoder.named_parameters():
        p.requires_grad_(stage.train_backbone and name in trainable)
    place_backbone(bb, fabric)
    optimizer = torch.optim.AdamW(param_groups(net, net.encoder, trainable, stage, config))
    model, optimizer = fabric.setup_module(net), fabric.setup_optimizers(optimizer)
    items = TrainItems(train.items, y, train_transform(bb, config.augment), seed)
    batches = EpochBatches()
    batch_loader = loader(items, batches, bb, 0)

    lrs, losses, smooth, best = [], [], 0.0, math.inf
    ratio = (end_lr / start_lr) ** (1 / max(1, num_it - 1))
    bar = _bar(num_it, progress)
    epoch, step = 0, 0
    while step < num_it:
        batches.set_epoch(
            epoch,
            epoch_batches(
                len(train), batch_size, seed=seed, epoch=epoch, rank=fabric.global_rank, world_size=fabric.world_size
            ),
        )
        net.set_train_mode()
        for x, yb in batch_loader:
            lr = start_lr * ratio**step
            for group in optimizer.param_groups:
                group["lr"] = group["top_lr"] * lr / config.loop.lr
            x, yb = fabric.to_device((x, yb))
            loss = objective(model(x), [yb[:, j] for j in range(yb.shape[1])])
            optimizer.zero_grad(set_to_none=True)
            fabric.backward(loss)
            optimizer.step()
            value = loss.item()
            smooth = 0.98 * smooth + 0.02 * value
            debiased = smooth / (1 - 0.98 ** (step + 1))
            lrs.append(lr)
            losses.append(debiased)
            best = min(best, debiased)
            step += 1
            bar.update(1)
            if not math.isfinite(value) or debiased > 4 * best or step >= num_it:
                step = num_it
                break
        epoch += 1
    bar.close()
    result = {"lrs": lrs, "losses": losses, **suggest(lrs, losses), "backbone": bb.spec, "strategy": strategy}
    if out is not None:
        result["png"] = str(plot(lrs, losses, result, Path(out), f"lr-find: {ds.source} with {bb.spec} ({strategy})"))
    return result


def suggest(lrs: list[float], losses: list[float]) -> dict[str, float | None]:
    """`suggestion`: the LR of steepest loss descent before the minimum; `min_lr_over_10`: fastai's older rule."""
    if len(lrs) < 3:
        return {"suggestion": None, "min_lr_over_10": None}
    loss = np.asarray(losses)
    log_lr = np.log10(np.asarray(lrs))
    lowest = int(np.argmin(loss))
    slopes = np.gradient(loss, log_lr)
    skip = min(len(loss) // 10, max(0, lowest - 1))  # the first points reflect the smoothing's warm-up
    window = slopes[skip : max(skip + 1, lowest)]
    steepest = skip + int(np.argmin(window))
    return {"suggestion": float(lrs[steepest]), "min_lr_over_10": float(lrs[lowest] / 10)}


def plot(lrs: list[float], losses: list[float], result: dict[str, Any], path: Path, title: str) -> Path:
    from headstart.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    if result.get("suggestion"):
        i = lrs.index(result["suggestion"])
        ax.plot([lrs[i]], [losses[i]], "o", color="red", label=f"suggested lr {lrs[i]:.2e}")
        ax.legend()
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="lr-find", unit="batch", disable=not enabled)
