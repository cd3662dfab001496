"""The learning-rate range test (Smith 2015, as fastai's `lr_find`): raise the LR exponentially, batch by batch,
record the smoothed loss, stop when it explodes, and suggest the LR where the loss falls fastest.

`lr_range_test` runs on a training set it is given, with the same network, objective, stage and optimizer set-up
as fine-tuning (`loop.setup`, `loop.enter_stage`); `headstart.finetuning.lr_find` loads and splits the data.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from headstart.backbones.base import Backbone
from headstart.data.dataset import Dataset
from headstart.finetune.config import FinetuneConfig


def lr_range_test(
    fabric: Any,
    backbone: Backbone,
    train: Dataset,
    config: FinetuneConfig,
    *,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_it: int = 100,
    progress: bool = True,
) -> dict[str, Any]:
    """The LRs tried and their smoothed losses, `suggestion` (steepest descent) and `min_lr_over_10`. Each group's
    rate keeps its ratio to `lr` as the first stage of the strategy sets it (the backbone below the head, ...)."""
    from headstart.finetune.loop import enter_stage, setup
    from headstart.finetune.strategies import plan_stages

    run = setup(fabric, backbone, train, config, progress=False)
    enter_stage(run, plan_stages(config)[0])
    ratio = (end_lr / start_lr) ** (1 / max(1, num_it - 1))
    lrs, losses, smooth, best = [], [], 0.0, math.inf
    bar = _bar(num_it, progress and fabric.global_rank == 0)
    epoch = 0
    while len(lrs) < num_it:
        run.train_batches.set_epoch(epoch, _batches(run, epoch))
        run.net.set_train_mode()
        for x, y in run.train_loader:
            lr = start_lr * ratio ** len(lrs)
            value = _step(run, x, y, lr / config.loop.lr)
            smooth = 0.98 * smooth + 0.02 * value
            debiased = smooth / (1 - 0.98 ** (len(lrs) + 1))
            lrs.append(lr)
            losses.append(debiased)
            best = min(best, debiased)
            bar.update(1)
            if not math.isfinite(value) or debiased > 4 * best or len(lrs) >= num_it:
                num_it = len(lrs)  # the loss exploded (or every step is done): stop here
                break
        epoch += 1
    bar.close()
    return {"lrs": lrs, "losses": losses, **suggest(lrs, losses)}


def _batches(run: Any, epoch: int) -> list[list[int]]:
    from headstart.training.batches import epoch_batches

    f = run.fabric
    return epoch_batches(len(run.train), run.config.loop.batch_size, seed=run.config.loop.seed, epoch=epoch,
                         rank=int(f.global_rank), world_size=int(f.world_size))  # fmt: skip


def _step(run: Any, x: Any, y: Any, factor: float) -> float:
    """One optimizer step with every group at `factor` of its top rate; the batch's loss."""
    for group in run.optimizer.param_groups:
        group["lr"] = group["top_lr"] * factor
    x, y = run.fabric.to_device((x, y))
    loss = run.objective(run.model(x), [y[:, j] for j in range(y.shape[1])])
    run.optimizer.zero_grad(set_to_none=True)
    run.fabric.backward(loss)
    run.optimizer.step()
    return float(loss.item())


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


def _bar(total: int, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="lr-find", unit="batch", disable=not enabled)
