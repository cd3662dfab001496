"""The fine-tuning loop: stages -> epochs -> steps, on the training engine (`headstart.training`).

A run is one `Run` (the context every function here shares). Stages (gradual unfreezing) set which parameters
train and rebuild the optimizer and the distributed wrapper. An epoch: deterministic batches (augmented per item,
by DataLoader workers that live for the whole run), then validation (reduced over processes), early-stopping
bookkeeping, and the engine's end of epoch (history, checkpoint, metrics.csv, TensorBoard). A step: the summed
task losses (+ L2-SP) of its batches, backward (accumulated over `accumulate` batches), clip, optimizer step, one-cycle
learning rate. Losses stay on the device within an epoch, so the CPU never waits for the GPU step by step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headstart.backbones.base import Backbone
from headstart.data.dataset import Dataset
from headstart.errors import HeadstartError
from headstart.features.extract import default_workers
from headstart.finetune.augment import batch_mix, train_transform
from headstart.finetune.config import FinetuneConfig
from headstart.finetune.data import (
    EpochBatches,
    EvalItems,
    Tasks,
    TrainItems,
    accumulation_batches,
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
from headstart.finetune.strategies import Stage, add_lora, one_cycle, param_groups, plan_stages, set_schedule
from headstart.training.batches import epoch_batches
from headstart.training.checkpoint import Checkpointer
from headstart.training.epochs import Epoch, EpochRunner
from headstart.training.fabric import place_backbone

CHECKPOINT_DIR = "checkpoint"
DIVERGED_HINT = " (headstart lr-find suggests one)"


@dataclass
class LoopState:
    """Early-stopping bookkeeping: the checkpoint's own state beside the engine's epoch and history."""

    best_epoch: int | None = None
    best_score: list[float] | None = None  # (mean validation accuracy, -validation loss)
    stale: int = 0
    finished: bool = False


@dataclass
class TrainResult:
    net: FinetuneNet
    tasks: Tasks
    history: list[dict[str, Any]]
    best_epoch: int | None
    resumed_at: int | None  # epochs already done when this process resumed the run
    global_rank: int
    world_size: int
    parameters: dict[str, int]  # backbone_total, backbone_trainable (LoRA: the adapters), heads


@dataclass
class Run:
    """One fine-tuning run, shared by its stages, epochs and steps."""

    fabric: Any
    backbone: Backbone
    config: FinetuneConfig
    tasks: Tasks
    net: FinetuneNet
    trainable: set[str]  # the backbone parameters that may train
    objective: Objective
    runner: EpochRunner
    train: TrainItems
    train_batches: EpochBatches  # set before each epoch
    train_loader: torch.utils.data.DataLoader
    val_loader: torch.utils.data.DataLoader | None
    workers: int
    steps: int  # optimizer steps per epoch
    mix: Callable[[torch.Tensor, torch.Tensor], tuple] | None  # MixUp / CutMix
    state: LoopState = field(default_factory=LoopState)
    best: dict[str, torch.Tensor] | None = None  # the weights of the best validation epoch (restore_best)
    bn_loader: torch.utils.data.DataLoader | None = None  # built at the first BatchNorm recalibration, if any
    model: Any = None  # the net as Fabric set it up for the current stage
    optimizer: Any = None

    @property
    def epochs_done(self) -> int:
        return len(self.runner.history)

    @property
    def pin(self) -> bool:
        return self.fabric.device.type == "cuda"


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
    config: FinetuneConfig,
    folder: Path | None = None,
    *,
    resume: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Fine-tune `backbone` with one head per label column of `train_ds`; with `folder`, checkpoints (resumed with
    `resume`), metrics.csv and TensorBoard scalars go there."""
    run = setup(fabric, backbone, train_ds, config, val_ds=val_ds, folder=folder, resume=resume, progress=progress)
    # images of one size on a GPU: let cuDNN time its algorithms for each shape once (as timm's train script does)
    with _cudnn_autotune(backbone.modality == "image" and fabric.device.type == "cuda"):
        try:
            for stage in plan_stages(run.config):
                _run_stage(run, stage)
        finally:
            run.runner.close()
    return TrainResult(
        run.net,
        run.tasks,
        run.runner.history,
        run.state.best_epoch,
        run.runner.resumed_at,
        int(fabric.global_rank),
        int(fabric.world_size),
        _parameter_counts(run.net, run.trainable),
    )


def setup(
    fabric: Any,
    backbone: Backbone,
    train_ds: Dataset,
    config: FinetuneConfig,
    *,
    val_ds: Dataset | None = None,
    folder: Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> Run:
    """Everything a run needs before its first stage: the network, the objective, the loaders, the epoch runner,
    and (with `resume`) the last checkpoint's weights and state, then each process's random state."""
    if config.unsized:  # callers of `train` itself (lr-find, tests)
        config = config.sized_to(len(train_ds), int(fabric.world_size), backbone.modality)
    tasks = Tasks.from_dataset(train_ds)
    net, trainable = prepare_net(backbone, train_ds, tasks, config)
    y_train = tasks.encode(train_ds)
    n_classes = [len(tasks.classes[t]) for t in tasks.names]
    objective = Objective(config, tasks.names, class_weights(y_train, n_classes, config.regularisation.class_weight))
    objective.anchor([p for n, p in net.encoder.named_parameters() if n in trainable])
    mix = batch_mix(config.augment, n_classes[0]) if backbone.modality == "image" else None
    if mix is not None and len(tasks.names) > 1:
        raise HeadstartError("MixUp / CutMix need a single label column")
    runner = _runner(fabric, config, folder, progress)
    workers = default_workers(backbone) if config.loop.num_workers is None else config.loop.num_workers
    place_backbone(backbone, fabric)
    items = TrainItems(train_ds.items, y_train, train_transform(backbone, config.augment), config.loop.seed)
    batches = EpochBatches()
    pin = fabric.device.type == "cuda"
    run = Run(
        fabric, backbone, config, tasks, net, trainable, objective, runner, items, batches,
        train_loader=loader(items, batches, backbone, workers, pin_memory=pin),
        val_loader=_val_loader(fabric, backbone, val_ds, tasks, config.loop.batch_size, workers),
        workers=workers,
        steps=steps_per_epoch(len(train_ds), _effective_batch(config), int(fabric.world_size)),
        mix=mix,
    )  # fmt: skip
    if resume:
        _restore(run)
    runner.seed()
    return run


def _runner(fabric: Any, config: FinetuneConfig, folder: Path | None, progress: bool) -> EpochRunner:
    checkpoints = None
    if folder is not None:
        checkpoints = Checkpointer(folder / CHECKPOINT_DIR, config.to_json(), fabric, may_change=("num_workers",))
    return EpochRunner(
        fabric, epochs=config.total_epochs, seed=config.loop.seed, checkpoints=checkpoints, log_dir=folder,
        progress=progress, name="fine-tuning", hint=DIVERGED_HINT, metrics_csv=True,
    )  # fmt: skip


def _val_loader(
    fabric: Any, backbone: Backbone, val_ds: Dataset | None, tasks: Tasks, batch_size: int, workers: int
) -> torch.utils.data.DataLoader | None:
    if val_ds is None:
        return None
    items = EvalItems(val_ds.items, tasks.encode(val_ds), backbone)
    rank, world = int(fabric.global_rank), int(fabric.world_size)
    order = epoch_batches(len(items), batch_size, seed=0, epoch=0, rank=rank, world_size=world, shuffle=False)
    return loader(items, order, backbone, workers, pin_memory=fabric.device.type == "cuda")


def _restore(run: Run) -> None:
    """The last checkpoint's network, early-stopping state and best weights (the optimizer's wait for its stage)."""
    restored = run.runner.resume()
    if restored is None:
        return
    run.net.load_state_dict(restored.modules["net"])
    run.state = LoopState(**restored.state)
    run.best = restored.snapshots.get("best")


def _effective_batch(config: FinetuneConfig) -> int:
    return config.loop.batch_size * config.loop.accumulate  # per process


@contextmanager
def _cudnn_autotune(enabled: bool) -> Iterator[None]:
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = previous or enabled
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


# --- stages ----------------------------------------------------------------------------------------------------


def _run_stage(run: Run, stage: Stage) -> None:
    """The stage's epochs still to run (none when a resumed run is past it, or it stopped early)."""
    end = stage.first_epoch + stage.epochs
    if run.epochs_done >= end or run.state.finished:
        return
    enter_stage(run, stage)
    while run.epochs_done < end and not run.state.finished:
        _run_epoch(run, stage, last_stage=end >= run.config.total_epochs)


def enter_stage(run: Run, stage: Stage) -> None:
    """Which parameters train in `stage`, a fresh optimizer for them (restored when resuming mid-stage), and the
    net and optimizer set up by Fabric."""
    net, done = run.net, run.epochs_done
    net.train_backbone = stage.train_backbone
    for name, p in net.encoder.named_parameters():
        p.requires_grad_(stage.train_backbone and name in run.trainable)
    optimizer = torch.optim.AdamW(param_groups(net, net.encoder, run.trainable, stage, run.config))
    restored = run.runner.restored
    if restored is not None and done == restored.epoch and done > stage.first_epoch:
        optimizer.load_state_dict(restored.optimizers["adamw"])
    run.model, run.optimizer = run.fabric.setup_module(net), run.fabric.setup_optimizers(optimizer)
    run.objective.anchors = [(p, a.to(p.device)) for p, a in run.objective.anchors]


# --- epochs ----------------------------------------------------------------------------------------------------


def _run_epoch(run: Run, stage: Stage, *, last_stage: bool) -> None:
    """Train on this epoch's batches, validate, keep the best weights, decide whether to stop, then the engine's end
    of epoch (history, checkpoint, metrics.csv, TensorBoard)."""
    config, index = run.config, run.epochs_done
    epoch = run.runner.epoch(index, f"epoch {index + 1}/{config.total_epochs} ({stage.name})")
    places = _set_batches(run, index)
    run.net.set_train_mode()
    _train_steps(run, stage, epoch, places)
    row: dict[str, Any] = {
        "epoch": index + 1,
        "stage": stage.name,
        "lr": float(max(g["top_lr"] for g in run.optimizer.param_groups)),
        "train_loss": epoch.means()[0]["loss"],
    }
    if run.val_loader is not None or index + 1 >= config.total_epochs:
        _precise_bn(run)
    if run.val_loader is not None:
        row.update(_validate(run))
    row["seconds"] = epoch.seconds
    _track_best(run, row)
    epoch.close_bar(
        loss=f"{row['train_loss']:.4f}", **({"val_acc": f"{row['val_accuracy']:.4f}"} if "val_accuracy" in row else {})
    )
    _decide_stop(run, index + 1, last_stage)
    snapshots = {"best": (run.state.best_epoch, run.best)} if run.best is not None else None
    run.runner.end(row, {"net": run.net}, {"adamw": run.optimizer}, state=asdict(run.state), snapshots=snapshots)


def _set_batches(run: Run, index: int) -> list[Any]:
    """This epoch's batches for the loader, and each one's place in gradient accumulation."""
    loop, f = run.config.loop, run.fabric
    steps = epoch_batches(len(run.train), _effective_batch(run.config), seed=loop.seed, epoch=index,
                          rank=int(f.global_rank), world_size=int(f.world_size))  # fmt: skip
    micro_batches, places = accumulation_batches(steps, loop.batch_size)
    run.train_batches.set_epoch(index, micro_batches)
    return places


def _decide_stop(run: Run, done: int, last_stage: bool) -> None:
    """Early stopping (patience, in the last stage) or the last epoch; a finished run ends with its best weights."""
    config, state = run.config, run.state
    patience = config.regularisation.patience
    if patience is not None and last_stage and state.stale >= patience and done < config.total_epochs:
        state.finished = True
    if done >= config.total_epochs:
        state.finished = True
    if state.finished and config.regularisation.restore_best and run.best is not None:
        run.net.load_state_dict(run.best)


def _track_best(run: Run, row: dict[str, Any]) -> None:
    """Early-stopping bookkeeping: the best (validation accuracy, then lower loss) epoch and its weights."""
    state = run.state
    if "val_accuracy" not in row:
        state.best_epoch, run.best = row["epoch"], None
        return
    score = [row["val_accuracy"], -row["val_loss"]]
    if state.best_score is None or score > state.best_score:
        state.best_score, state.best_epoch, state.stale = score, row["epoch"], 0
        restore = run.config.regularisation.restore_best
        run.best = {k: v.detach().cpu().clone() for k, v in run.net.state_dict().items()} if restore else None
        return
    state.stale += 1


# --- steps -----------------------------------------------------------------------------------------------------


def _train_steps(run: Run, stage: Stage, epoch: Epoch, places: list[Any]) -> None:
    """One pass over the epoch's batches: each optimizer step accumulates the gradients of its batches (`places`),
    then clips and steps, at the stage's one-cycle learning rate. The loss is logged on the device."""
    f, model, optimizer = run.fabric, run.model, run.optimizer
    first_step, total = (epoch.index - stage.first_epoch) * run.steps, stage.epochs * run.steps
    grad_clip = run.config.loop.grad_clip
    for i, (x, y) in enumerate(epoch.track(run.train_loader, total=len(places))):
        place = places[i]
        if place.first:
            set_schedule(optimizer, one_cycle(first_step + place.step, total, stage))
            optimizer.zero_grad(set_to_none=True)
        x, y = f.to_device((x, y))
        targets = [y[:, j] for j in range(y.shape[1])]
        if run.mix is not None:  # MixUp / CutMix blend normalised float images
            x, soft = run.mix(run.backbone.normalize(x), targets[0])
            targets = [soft]
        with f.no_backward_sync(model, enabled=not place.last):  # DDP: all-reduce once per step
            loss = run.objective(model(x), targets)
            f.backward(loss * place.share if place.share != 1.0 else loss)
        if place.last:
            if grad_clip:
                # a non-finite norm is caught once per epoch by the engine, not by a wait for the GPU every step
                f.clip_gradients(model, optimizer, max_norm=grad_clip, error_if_nonfinite=False)
            optimizer.step()
        epoch.log(loss, len(targets[0]))


def _precise_bn(run: Run) -> None:
    """Recalibrate trained BatchNorms on the first `precise_bn` training items (un-augmented), the same items in
    every process, so all processes end with the same statistics."""
    n = min(run.config.loop.precise_bn, len(run.train))
    if n == 0 or not trained_batchnorms(run.net):
        return
    if run.bn_loader is None:
        items = EvalItems(run.train.items[:n], run.train.labels[:n], run.backbone)
        order = epoch_batches(n, run.config.loop.batch_size, seed=0, epoch=0, rank=0, world_size=1, shuffle=False)
        run.bn_loader = loader(items, order, run.backbone, run.workers, pin_memory=run.pin)
    recalibrate_batchnorm(run.net, run.model, (run.fabric.to_device(x) for x, _ in run.bn_loader))


def _validate(run: Run) -> dict[str, float]:
    """Validation loss and accuracy per task, summed over every process's share of the validation items (kept on
    the device until the end: one transfer per validation, not per batch)."""
    run.net.eval()
    names = run.tasks.names
    n_tasks = len(names)
    sums = torch.zeros(1 + 2 * n_tasks, dtype=torch.float32, device=run.fabric.device)  # loss sum, (correct, count)s
    with torch.no_grad():
        for x, y in run.val_loader:
            x, y = run.fabric.to_device((x, y))
            for j, logits in enumerate(run.model(x)):
                target = y[:, j]
                keep = target >= 0  # -1: no usable label for this task
                out = logits.float()
                losses = torch.nn.functional.cross_entropy(out, target.clamp(min=0), reduction="none")
                sums[0] += (losses * keep).sum() / n_tasks
                sums[1 + 2 * j] += ((out.argmax(1) == target) & keep).sum()
                sums[2 + 2 * j] += keep.sum()
    totals = run.fabric.all_reduce(sums, reduce_op="sum").tolist()
    accs = [totals[1 + 2 * j] / max(1.0, totals[2 + 2 * j]) for j in range(n_tasks)]
    row = {"val_loss": totals[0] / max(1.0, totals[2]), "val_accuracy": float(np.mean(accs))}
    if n_tasks > 1:
        row.update({f"val_accuracy/{t}": a for t, a in zip(names, accs)})
    return row


def _parameter_counts(net: FinetuneNet, trainable: set[str]) -> dict[str, int]:
    return {
        "backbone_total": sum(p.numel() for p in net.encoder.parameters()),
        "backbone_trainable": sum(p.numel() for n, p in net.encoder.named_parameters() if n in trainable),
        "heads": sum(p.numel() for n, p in net.named_parameters() if not n.startswith("encoder.")),
    }
