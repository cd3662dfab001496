"""The training loop: ours and readable; devices, DDP, multi-node launch and mixed precision are Fabric's.

One epoch: deterministic batches (augmented per item, by DataLoader workers that live for the whole run), forward
through backbone and heads, the summed task losses (+ L2-SP), backward (accumulated over `accumulate` batches), clip,
step, one-cycle learning rate per step; then validation (reduced over processes), early stopping bookkeeping and a
checkpoint. Losses stay on the device within an epoch, so the CPU never waits for the GPU step by step. Stages
(gradual unfreezing) change which parameters train and rebuild the optimizer and the distributed wrapper.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headstart.backbones.base import Backbone
from headstart.data.dataset import Dataset
from headstart.features.extract import default_workers
from headstart.finetune import checkpoint as ckpt
from headstart.finetune.augment import batch_mix, train_transform
from headstart.finetune.config import FinetuneConfig
from headstart.finetune.data import (
    EpochBatches,
    EvalItems,
    MicroBatch,
    Tasks,
    TrainItems,
    accumulation_batches,
    epoch_batches,
    loader,
    steps_per_epoch,
)
from headstart.finetune.net import (
    FinetuneNet,
    Objective,
    build_net,
    class_weights,
    feature_stats,
    pretrained_features,
    probe_init,
    recalibrate_batchnorm,
    trained_batchnorms,
    used_parameters,
)
from headstart.finetune.strategies import (
    Stage,
    add_lora,
    one_cycle,
    param_groups,
    plan_stages,
    set_schedule,
    stage_of,
)

BAR_REFRESH_S = 1.0  # the progress bar's loss is read from the device at most this often (and at the end)


def make_fabric(config: FinetuneConfig) -> Any:
    """A launched `lightning.fabric.Fabric` (with the `ddp` strategy, this starts the other processes)."""
    from lightning.fabric import Fabric

    d = config.distributed
    try:
        fabric = Fabric(
            accelerator=d.accelerator,
            devices=d.devices,
            num_nodes=d.num_nodes,
            strategy=d.fabric_strategy,
            precision=d.precision,
        )
    except (ValueError, TypeError, RuntimeError) as exc:  # Fabric's checks of the combination, e.g. FSDP on CPU
        from headstart.errors import HeadstartError

        given = (f"accelerator={d.accelerator}, devices={d.devices}, num_nodes={d.num_nodes}, "
                 f"strategy={d.fabric_strategy}, precision={d.precision}")  # fmt: skip
        raise HeadstartError(f"Lightning Fabric cannot run with {given}: {exc}") from None
    fabric.launch()
    return fabric


def place_backbone(backbone: Backbone, fabric: Any) -> None:
    """The backbone on Fabric's device, in the memory layout its convolutions run fastest in at Fabric's precision
    (channels_last for 16-bit on a GPU or for the CPU, the plain layout for float32 on a GPU)."""
    precision = str(getattr(fabric.strategy.precision, "precision", "32-true"))
    backbone.place(fabric.device, half_precision="16" in precision)


@dataclass
class TrainResult:
    net: FinetuneNet
    history: list[dict[str, Any]]
    best_epoch: int | None
    resumed_at: int | None  # epochs already done when this process resumed the run
    global_rank: int
    world_size: int
    parameters: dict[str, int]  # backbone_total, backbone_trainable (LoRA: the adapters), heads


def prepare_net(
    backbone: Backbone, train: Dataset, tasks: Tasks, config: FinetuneConfig
) -> tuple[FinetuneNet, set[str]]:
    """The network (heads standardised on pretrained features) and the backbone parameters that may train."""
    torch.manual_seed(config.loop.seed)
    pick, x = pretrained_features(backbone, train.items, config.loop.seed)
    mean, scale = feature_stats(x)
    net = build_net(backbone, [len(tasks.classes[t]) for t in tasks.names], mean, scale, config)
    if config.head.init == "probe":
        probe_init(net, x, {t: [str(train.targets[t][i]) for i in pick] for t in tasks.names}, tasks.classes)
    if config.strategy.strategy == "lora":
        add_lora(net.encoder, config)
    probe = backbone.collate([backbone.prepare(item) for item in train.items[:2]])
    used = used_parameters(net, probe)
    trainable = {n for n, p in net.encoder.named_parameters() if p.requires_grad and n in used}
    for name, p in net.encoder.named_parameters():
        p.requires_grad_(name in trainable)
    return net, trainable


def train(
    fabric: Any,
    backbone: Backbone,
    train_ds: Dataset,
    val_ds: Dataset | None,
    tasks: Tasks,
    config: FinetuneConfig,
    folder: Path | None,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune `backbone` with one head per task; checkpoints, metrics CSV and history go to `folder`."""
    # images of one size on a GPU: let cuDNN time its algorithms for each shape once (as timm's train script does)
    with _cudnn_autotune(backbone.modality == "image" and fabric.device.type == "cuda"):
        return _train(fabric, backbone, train_ds, val_ds, tasks, config, folder, resume=resume, progress=progress)


@contextmanager
def _cudnn_autotune(enabled: bool) -> Iterator[None]:
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = previous or enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def _train(
    fabric: Any,
    backbone: Backbone,
    train_ds: Dataset,
    val_ds: Dataset | None,
    tasks: Tasks,
    config: FinetuneConfig,
    folder: Path | None,
    *,
    resume: bool,
    progress: bool,
) -> TrainResult:
    loop_cfg = config.loop
    rank, world = fabric.global_rank, fabric.world_size
    net, trainable = prepare_net(backbone, train_ds, tasks, config)
    y_train, y_val = tasks.encode(train_ds), (tasks.encode(val_ds) if val_ds is not None else None)
    n_classes = [len(tasks.classes[t]) for t in tasks.names]
    objective = Objective(config, tasks.names, class_weights(y_train, n_classes, config.regularisation.class_weight))
    objective.anchor([p for n, p in net.encoder.named_parameters() if n in trainable])
    counts = {
        "backbone_total": sum(p.numel() for p in net.encoder.parameters()),
        "backbone_trainable": sum(p.numel() for n, p in net.encoder.named_parameters() if n in trainable),
        "heads": sum(p.numel() for n, p in net.named_parameters() if not n.startswith("encoder.")),
    }

    checkpoints = folder / "checkpoint" if folder is not None else None
    restored = ckpt.load(checkpoints, config.to_json()) if (resume and checkpoints is not None) else None
    state = ckpt.LoopState()
    best_state: dict[str, torch.Tensor] | None = None
    if restored is not None:
        net.load_state_dict(restored.net_state)
        state, best_state = restored.loop, restored.best_state
    resumed_at = state.epoch if restored is not None else None

    stages = plan_stages(config)
    effective_batch = loop_cfg.batch_size * loop_cfg.accumulate  # per process
    steps = steps_per_epoch(len(train_ds), effective_batch, world)
    workers = default_workers(backbone) if loop_cfg.num_workers is None else loop_cfg.num_workers
    place_backbone(backbone, fabric)
    pin = fabric.device.type == "cuda"
    train_items = TrainItems(train_ds.items, y_train, train_transform(backbone, config.augment), loop_cfg.seed)
    train_batches = EpochBatches()
    train_loader = loader(train_items, train_batches, backbone, workers, pin_memory=pin)
    val_loader = None
    if val_ds is not None:
        val_items = EvalItems(val_ds.items, y_val, backbone)
        val_order = epoch_batches(len(val_items), loop_cfg.batch_size, seed=0, epoch=0, rank=rank, world_size=world,
                                  shuffle=False)  # fmt: skip
        val_loader = loader(val_items, val_order, backbone, workers, pin_memory=pin)
    bn_loader = None  # built at the first recalibration, if any BatchNorm trains
    board = None  # TensorBoard, opened at the first epoch's end (rank 0 only)
    mix = batch_mix(config.augment, n_classes[0]) if backbone.modality == "image" else None
    if mix is not None and len(tasks.names) > 1:
        from headstart.errors import HeadstartError

        raise HeadstartError("MixUp / CutMix need a single label column")

    stage = model = optimizer = None
    if restored is not None and not ckpt.restore_rng(restored, rank, world):
        torch.manual_seed(loop_cfg.seed + 1000 * rank + state.epoch)
    elif restored is None:
        torch.manual_seed(loop_cfg.seed + 1000 * rank)
    while state.epoch < config.total_epochs and not state.finished:
        epoch = state.epoch
        if stage is None or stage_of(stages, epoch) != stage:
            stage = stage_of(stages, epoch)
            net.train_backbone = stage.train_backbone
            for name, p in net.encoder.named_parameters():
                p.requires_grad_(stage.train_backbone and name in trainable)
            optimizer = torch.optim.AdamW(param_groups(net, net.encoder, trainable, stage, config))
            if restored is not None and epoch == restored.loop.epoch and epoch > stage.first_epoch:
                optimizer.load_state_dict(restored.optimizer)
            model, optimizer = fabric.setup_module(net), fabric.setup_optimizers(optimizer)
            objective.anchors = [(p, a.to(p.device)) for p, a in objective.anchors]

        started = time.perf_counter()
        micro_batches, places = accumulation_batches(
            epoch_batches(len(train_ds), effective_batch, seed=loop_cfg.seed, epoch=epoch, rank=rank,
                          world_size=world),
            loop_cfg.batch_size,
        )  # fmt: skip
        train_batches.set_epoch(epoch, micro_batches)
        net.set_train_mode()
        title = f"epoch {epoch + 1}/{config.total_epochs} ({stage.name})"
        bar = _bar(len(train_batches), title, progress and rank == 0)
        first_step = (epoch - stage.first_epoch) * steps
        train_loss = _train_epoch(
            fabric, model, optimizer, objective, train_loader, places, bar,
            schedule=_stage_schedule(stage, first_step, stage.epochs * steps),
            mix=mix, backbone=backbone, grad_clip=loop_cfg.grad_clip,
        )  # fmt: skip
        if not np.isfinite(train_loss):
            from headstart.errors import HeadstartError

            raise HeadstartError(
                f"fine-tuning diverged in epoch {epoch + 1} (training loss {train_loss}); try a lower --lr "
                "(headstart lr-find suggests one) or --precision 32-true"
            )
        row: dict[str, Any] = {
            "epoch": epoch + 1,
            "stage": stage.name,
            "lr": float(max(g["top_lr"] for g in optimizer.param_groups)),
            "train_loss": train_loss,
        }
        if val_loader is not None or state.epoch + 1 >= config.total_epochs:
            bn_loader = _precise_bn(fabric, model, net, train_ds, y_train, backbone, config, workers, bn_loader, pin)
        if val_loader is not None:
            row.update(_validate(fabric, model, net, val_loader, tasks))
        row["seconds"] = round(time.perf_counter() - started, 3)
        state.history.append(row)
        state.epoch = epoch + 1
        best_state = _track_best(state, row, net, best_state, config)
        bar.set_postfix(
            loss=f"{row['train_loss']:.4f}",
            **({"val_acc": f"{row['val_accuracy']:.4f}"} if "val_accuracy" in row else {}),
        )
        bar.close()
        last_stage = stage is stages[-1]
        patience = config.regularisation.patience
        if patience is not None and last_stage and state.stale >= patience and state.epoch < config.total_epochs:
            state.finished = True
        if state.epoch >= config.total_epochs:
            state.finished = True
        if state.finished and config.regularisation.restore_best and best_state is not None:
            net.load_state_dict(best_state)
        _checkpoint(fabric, checkpoints, state, net, optimizer, best_state, config)
        if folder is not None and rank == 0:
            from headstart.finetune.outputs import TensorBoardLog, write_metrics_csv

            write_metrics_csv(folder, state.history)
            board = board or TensorBoardLog(folder)
            board.epoch(row)
    if board is not None:
        board.close()

    return TrainResult(net, state.history, state.best_epoch, resumed_at, rank, world, counts)


def _stage_schedule(stage: Stage, first_step: int, total: int) -> Callable[[int], float]:
    """The learning-rate factor for an epoch's k-th optimizer step: the stage's one-cycle at `first_step + k`."""
    return lambda k: one_cycle(first_step + k, total, stage)


def _train_epoch(
    fabric: Any,
    model: Any,
    optimizer: Any,
    objective: Objective,
    batches: torch.utils.data.DataLoader,
    places: list[MicroBatch],
    bar: Any,
    *,
    schedule: Callable[[int], float],
    mix: Callable[[torch.Tensor, torch.Tensor], tuple] | None,
    backbone: Backbone,
    grad_clip: float | None,
) -> float:
    """One pass over the epoch's batches: each optimizer step accumulates the gradients of its batches (`places`),
    then clips and steps; `schedule(step)` sets the learning rate. Returns the mean training loss over every
    process's items."""
    # loss * items summed on the device: reading a loss every step would make the CPU wait for the GPU each step
    # instead of queueing the next one; the bar reads it about once a second
    loss_sum, count = torch.zeros((), dtype=torch.float32, device=fabric.device), 0  # (MPS has no float64)
    shown = time.perf_counter()
    for i, (x, y) in enumerate(batches):
        place = places[i]
        if place.first:
            set_schedule(optimizer, schedule(place.step))
            optimizer.zero_grad(set_to_none=True)
        x, y = fabric.to_device((x, y))
        targets = [y[:, j] for j in range(y.shape[1])]
        if mix is not None:  # MixUp / CutMix blend normalised float images
            x, soft = mix(backbone.normalize(x), targets[0])
            targets = [soft]
        with fabric.no_backward_sync(model, enabled=not place.last):  # DDP: all-reduce once per step
            loss = objective(model(x), targets)
            fabric.backward(loss * place.share if place.share != 1.0 else loss)
        if place.last:
            if grad_clip:
                # a non-finite norm is caught once per epoch by the caller, not by a wait for the GPU every step
                fabric.clip_gradients(model, optimizer, max_norm=grad_clip, error_if_nonfinite=False)
            optimizer.step()
        n = len(targets[0])
        loss_sum += loss.detach().float() * n
        count += n
        bar.update(1)
        if time.perf_counter() - shown >= BAR_REFRESH_S or i + 1 == len(places):
            bar.set_postfix(loss=f"{loss_sum.item() / max(1, count):.4f}")
            shown = time.perf_counter()
    totals = fabric.all_reduce(torch.stack([loss_sum, loss_sum.new_tensor(count)]), reduce_op="sum").tolist()
    return totals[0] / max(1.0, totals[1])


def _precise_bn(
    fabric: Any,
    model: Any,
    net: FinetuneNet,
    train_ds: Dataset,
    labels: np.ndarray,
    backbone: Backbone,
    config: FinetuneConfig,
    workers: int,
    batches: torch.utils.data.DataLoader | None,
    pin: bool,
) -> torch.utils.data.DataLoader | None:
    """Recalibrate trained BatchNorms on the first `precise_bn` training items (un-augmented), the same items in
    every process, so all processes end with the same statistics. Returns the loader for the next call (built
    only when some BatchNorm trains)."""
    n = min(config.loop.precise_bn, len(train_ds))
    if n == 0 or not trained_batchnorms(net):
        return batches
    if batches is None:
        items = EvalItems(train_ds.items[:n], labels[:n], backbone)
        order = epoch_batches(n, config.loop.batch_size, seed=0, epoch=0, rank=0, world_size=1, shuffle=False)
        batches = loader(items, order, backbone, workers, pin_memory=pin)
    recalibrate_batchnorm(net, model, (fabric.to_device(x) for x, _ in batches))
    return batches


def _validate(
    fabric: Any, model: Any, net: FinetuneNet, batches: torch.utils.data.DataLoader, tasks: Tasks
) -> dict[str, float]:
    """Validation loss and accuracy per task, summed over every process's share of the validation items (kept on
    the device until the end: one transfer per validation, not per batch)."""
    net.eval()
    n_tasks = len(tasks.names)
    sums = torch.zeros(1 + 2 * n_tasks, dtype=torch.float32, device=fabric.device)  # loss sum, (correct, count)s
    with torch.no_grad():
        for x, y in batches:
            x, y = fabric.to_device((x, y))
            for j, logits in enumerate(model(x)):
                target = y[:, j]
                keep = target >= 0  # -1: no usable label for this task
                out = logits.float()
                losses = torch.nn.functional.cross_entropy(out, target.clamp(min=0), reduction="none")
                sums[0] += (losses * keep).sum() / n_tasks
                sums[1 + 2 * j] += ((out.argmax(1) == target) & keep).sum()
                sums[2 + 2 * j] += keep.sum()
    totals = fabric.all_reduce(sums, reduce_op="sum").tolist()
    accs = [totals[1 + 2 * j] / max(1.0, totals[2 + 2 * j]) for j in range(n_tasks)]
    row = {"val_loss": totals[0] / max(1.0, totals[2]), "val_accuracy": float(np.mean(accs))}
    if n_tasks > 1:
        row.update({f"val_accuracy/{t}": a for t, a in zip(tasks.names, accs)})
    return row


def _track_best(
    state: ckpt.LoopState,
    row: dict[str, Any],
    net: FinetuneNet,
    best: dict[str, torch.Tensor] | None,
    config: FinetuneConfig,
) -> dict[str, torch.Tensor] | None:
    """Early-stopping bookkeeping: the best (validation accuracy, then lower loss) epoch and its weights."""
    if "val_accuracy" not in row:
        state.best_epoch = row["epoch"]
        return None
    score = [row["val_accuracy"], -row["val_loss"]]
    if state.best_score is None or score > state.best_score:
        state.best_score, state.best_epoch, state.stale = score, row["epoch"], 0
        if config.regularisation.restore_best:
            return {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        return None
    state.stale += 1
    return best


def _checkpoint(
    fabric: Any,
    folder: Path | None,
    state: ckpt.LoopState,
    net: FinetuneNet,
    optimizer: Any,
    best_state: dict[str, torch.Tensor] | None,
    config: FinetuneConfig,
) -> None:
    if folder is None:
        return
    rng = fabric.all_gather(ckpt.torch_rng_state())  # every process's random state, collected on each
    rng = rng.reshape(fabric.world_size, -1).cpu()
    if fabric.global_rank == 0:
        ckpt.save(folder, state, net.state_dict(), optimizer, rng, best_state, config.to_json())
    fabric.barrier()


def _bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", disable=not enabled, leave=True, dynamic_ncols=True)
