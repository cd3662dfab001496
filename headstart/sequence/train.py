"""Fine-tuning any `SequenceAdapter` on the training engine (`headstart.training`).

    result = train_sequence(adapter, train_pairs, val_pairs, SequenceTrainConfig(epochs=3), folder=run_dir)

Per run: `adapter.select_trainable(strategy)`, AdamW over the parameters that train, a linear warm-up then linear
decay of the learning rate, the model set up by Lightning Fabric. Per epoch: the engine's batches (seeded by run and
epoch), `adapter.collate(..., train=True)` and `model(**batch).loss`, gradients clipped; then the validation loss
and the task's generation metric (`metrics.PRIMARY`: chrF for seq2seq, WER for transcribe) on the validation pairs;
the best epoch's weights are kept aside and put back at the end. The engine writes the checkpoint (`checkpoint/`,
atomic; `resume=True` goes on from the last one, refused under other settings), metrics.csv and TensorBoard.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from headstart.sequence.adapter import Pair, SequenceAdapter
from headstart.sequence.metrics import PRIMARY, score
from headstart.sequence.strategies import trainable_count
from headstart.training.checkpoint import Checkpointer
from headstart.training.epochs import EpochRunner
from headstart.training.fabric import make_fabric
from headstart.training.settings import DistributedConfig

CHECKPOINT_DIR = "checkpoint"


@dataclass
class SequenceTrainConfig:
    """The settings of one fine-tuning run (saved beside it, checked on resume)."""

    epochs: int = 3
    lr: float = 5e-5
    batch_size: int = 8
    strategy: str = "full"  # full, decoder, lora
    warmup: float = 0.1  # share of the steps spent warming up
    weight_decay: float = 0.01
    clip: float = 1.0
    num_beams: int = 1  # for the per-epoch generation metric
    max_length: int | None = None  # new tokens at most (None: the adapter's own)
    eval_max: int = 200  # validation pairs generated each epoch, at most
    seed: int = 0
    resume: bool = False
    progress: bool = True
    distributed: DistributedConfig = field(default_factory=lambda: DistributedConfig(accelerator="cpu"))


@dataclass
class SequenceTrainResult:
    history: list[dict[str, Any]]
    best_epoch: int | None  # None: no validation pairs, the last epoch's weights are kept
    resumed_at: int | None
    parameters: dict[str, int]


def train_sequence(
    adapter: SequenceAdapter,
    train: list[Pair],
    val: list[Pair],
    config: SequenceTrainConfig,
    *,
    folder: Path | None = None,
) -> SequenceTrainResult:
    """Fine-tune `adapter.model` in place on `train`, choosing the best epoch on `val` (see the module docstring)."""
    c = config
    fabric = make_fabric(c.distributed)
    torch.manual_seed(c.seed)
    adapter.select_trainable(c.strategy)
    model = adapter.model
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=c.lr, weight_decay=c.weight_decay)
    steps = max(1, len(train) // c.batch_size) * c.epochs
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_decay(steps, round(c.warmup * steps)))
    settings = {k: v for k, v in asdict(c).items() if k not in ("resume", "progress")}
    run = {**settings, "spec": adapter.spec, "train": len(train), "val": len(val)}
    checkpoints = Checkpointer(folder / CHECKPOINT_DIR if folder else None, run, fabric)
    runner = EpochRunner(
        fabric, epochs=c.epochs, seed=c.seed, checkpoints=checkpoints, log_dir=folder, progress=c.progress,
        name="sequence fine-tuning", batch_size=c.batch_size, metrics_csv=True,
    )  # fmt: skip
    restored = runner.resume() if c.resume else None
    best: dict[str, Any] = {"epoch": None, "key": None}
    if restored is not None:
        restored.load_into({"model": model}, {"optimizer": optimizer})
        schedule.load_state_dict(restored.state["schedule"])
        best = dict(restored.state["best"])
    runner.seed()
    wrapped, optimizer = fabric.setup(model, optimizer)
    metric, higher = PRIMARY[adapter.task]
    snapshot = dict(restored.snapshots.get("best", {})) if restored is not None else {}
    for index in range(runner.start, c.epochs):
        row = _train_epoch(runner, index, adapter, wrapped, optimizer, schedule, train, fabric, c)
        if val:
            row.update(validate(adapter, wrapped, val, c))
            key = (row[f"val_{metric}"] * (1 if higher else -1), -row["val_loss"])
            if best["key"] is None or key > tuple(best["key"]):
                best = {"epoch": row["epoch"], "key": list(key)}
                snapshot = {k: v.detach().clone() for k, v in model.state_dict().items()}
        snapshots = {"best": (best["epoch"], snapshot)} if snapshot and best["epoch"] == row["epoch"] else None
        runner.end(row, {"model": model}, {"optimizer": optimizer},
                   state={"schedule": schedule.state_dict(), "best": best}, snapshots=snapshots)  # fmt: skip
    runner.close()
    if snapshot:
        model.load_state_dict(snapshot)
    return SequenceTrainResult(runner.history, best["epoch"], runner.resumed_at, trainable_count(model))


def _train_epoch(
    runner: EpochRunner,
    index: int,
    adapter: SequenceAdapter,
    wrapped: Any,
    optimizer: Any,
    schedule: Any,
    train: list[Pair],
    fabric: Any,
    c: SequenceTrainConfig,
) -> dict[str, Any]:
    epoch = runner.epoch(index)
    wrapped.train()
    for rows in epoch.track(epoch.batches(len(train), on_device=False)):
        pairs = [train[i] for i in rows.tolist()]
        batch = fabric.to_device(adapter.collate(pairs, train=True))
        loss = wrapped(**batch).loss
        fabric.backward(loss)
        if c.clip:
            fabric.clip_gradients(wrapped, optimizer, max_norm=c.clip)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        schedule.step()
        epoch.log(loss, len(pairs), lr=schedule.get_last_lr()[0])
    return epoch.summary()


def validate(adapter: SequenceAdapter, model: Any, val: list[Pair], c: SequenceTrainConfig) -> dict[str, float]:
    """The mean validation loss over `val`, and the task's metrics on generated text for its first `eval_max`."""
    model.eval()
    total, count = 0.0, 0
    device = next(adapter.model.parameters()).device
    with torch.inference_mode():
        for start in range(0, len(val), c.batch_size):
            pairs = val[start : start + c.batch_size]
            batch = {
                k: v.to(device) if isinstance(v, torch.Tensor) else v
                for k, v in adapter.collate(pairs, train=False).items()
            }
            total += float(model(**batch).loss) * len(pairs)
            count += len(pairs)
    shown = val[: c.eval_max]
    outputs = adapter.generate([p.source for p in shown], num_beams=c.num_beams, max_length=c.max_length)
    metrics = score(adapter.task, outputs, [p.target or "" for p in shown])
    model.train()
    return {"val_loss": round(total / max(count, 1), 5), **{f"val_{k}": v for k, v in metrics.items()}}


def _warmup_decay(total: int, warmup: int) -> Any:
    """A factor on the learning rate: linear from 0 to 1 over `warmup` steps, then linear down to 0 at `total`."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (total - step) / max(1, total - warmup))

    return factor
