"""The epoch runner every training loop stands on.

    runner = EpochRunner(fabric, epochs=5, seed=0, checkpoints=Checkpointer(...), log_dir=out, name="pretraining")
    restored = runner.resume()                # the last checkpoint (None: start afresh); its history is kept
    if restored: restored.load_into(modules, optimizers)
    runner.seed()                             # each process's random state: restored, or seeded by rank
    for index in range(runner.start, runner.epochs):
        epoch = runner.epoch(index)
        for batch in epoch.track(epoch.batches(n)):   # this process's share, a progress bar
            ...; epoch.log(loss, len(batch))          # summed on the device, read about once a second
        runner.end(epoch.summary(), modules, optimizers)  # reduced over processes, divergence checked
    runner.close()

`end` appends the row to `history`, checkpoints, and (process 0) writes metrics.csv and TensorBoard scalars.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from headstart.training.batches import epoch_batches
from headstart.training.checkpoint import Checkpointer, Restored
from headstart.training.settings import BAR_REFRESH_S, TrainingError


class Epoch:
    """One epoch of a loop: its batches, its random numbers, its progress bar and its logged sums."""

    def __init__(self, index: int, runner: EpochRunner, title: str) -> None:
        self.index, self.number, self.runner, self.fabric = index, index + 1, runner, runner.fabric
        self.title = title
        self.seed = runner.seed_value * 7919 + index * 104729 + int(self.fabric.global_rank) * 15485863
        self._generator: torch.Generator | None = None
        self.sums: dict[str, Any] = {}
        self.count = 0
        self.bar: Any = None
        self._started = self._shown = time.perf_counter()

    @property
    def generator(self) -> torch.Generator:
        """Random numbers on the device seeded by (run seed, epoch, process): the same whether or not the run was
        resumed, so a resumed run ends where an uninterrupted one does."""
        if self._generator is None:
            self._generator = torch.Generator(device=self.fabric.device).manual_seed(self.seed)
        return self._generator

    def batches(self, n: int, batch_size: int | None = None, *, on_device: bool = True) -> list[torch.Tensor]:
        """This process's batches of item indices (a seeded permutation; the last short batch dropped), on the
        device to index tensors there, or (`on_device=False`) on the host to index Python lists without a wait."""
        f = self.fabric
        rows = epoch_batches(
            n,
            batch_size or self.runner.batch_size,
            seed=self.runner.seed_value,
            epoch=self.index,
            rank=f.global_rank,
            world_size=f.world_size,
        )
        return [torch.tensor(b, device=f.device if on_device else "cpu") for b in rows]

    def track(self, iterable: Iterable[Any], total: int | None = None) -> Iterator[Any]:
        """`iterable` behind this epoch's progress bar (shown on process 0 when the run shows progress)."""
        from tqdm.auto import tqdm

        total = total if total is not None else len(iterable)  # type: ignore[arg-type]
        show = self.runner.progress and self.fabric.global_rank == 0
        self.bar = tqdm(iterable, total=total, desc=self.title, unit="batch", disable=not show, dynamic_ncols=True)
        yield from self.bar

    def log(self, loss: float | torch.Tensor, n: int, **values: float | torch.Tensor) -> None:
        """Add one batch: its mean `loss` (and other values) over `n` items. Tensors are summed where they are
        (reading one every step would make the CPU wait for the GPU); the bar reads the sums about once a second."""
        self.count += n
        for key, value in {"loss": loss, **values}.items():
            term = value.detach().float() * n if isinstance(value, torch.Tensor) else float(value) * n
            self.sums[key] = self.sums.get(key, 0.0) + term
        if self.bar is not None and self.count and time.perf_counter() - self._shown >= BAR_REFRESH_S:
            self.bar.set_postfix(loss=f"{float(self.sums['loss']) / self.count:.4f}")
            self._shown = time.perf_counter()

    def means(self) -> tuple[dict[str, float], int]:
        """Each logged value's mean per item over every process's items, and the number of items; a loss that is
        not finite stops the run (checked once per epoch, not by a wait for the device every step)."""
        keys = sorted(self.sums)
        device = self.fabric.device
        local = torch.stack(
            [torch.as_tensor(self.sums[k], dtype=torch.float32, device=device) for k in keys]
            + [torch.tensor(float(self.count), dtype=torch.float32, device=device)]
        )  # float32: MPS has no float64
        total = self.fabric.all_reduce(local, reduce_op="sum") if self.fabric.world_size > 1 else local
        values = total.tolist()
        count = values[-1]
        means = {k: values[i] / max(count, 1.0) for i, k in enumerate(keys)}
        loss = means.get("loss", 0.0)
        if not math.isfinite(loss):
            r = self.runner
            raise TrainingError(
                f"{r.name} diverged in epoch {self.number} (training loss {loss}); try a lower --lr{r.hint} or "
                "--precision 32-true"
            )
        return means, int(count)

    @property
    def seconds(self) -> float:
        return round(time.perf_counter() - self._started, 3)

    def summary(self) -> dict[str, Any]:
        """The history row: `epoch`, each logged mean, `samples`, `seconds`, `samples_per_s`."""
        means, count = self.means()
        seconds = self.seconds
        row: dict[str, Any] = {"epoch": self.number, **means}
        row.update({"samples": count, "seconds": seconds, "samples_per_s": round(count / max(seconds, 1e-6), 1)})
        self.close_bar(loss=f"{row.get('loss', float('nan')):.4f}")
        return row

    def close_bar(self, **postfix: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix(**postfix)
            self.bar.close()


class EpochRunner:
    """Runs the epochs of any loop: resume, per-process seeding, one `Epoch` at a time, and after each the history
    row, the checkpoint, metrics.csv and TensorBoard (in `log_dir`, by process 0). `name` and `hint` word the
    divergence error ("fine-tuning diverged in epoch 3 ...; try a lower --lr{hint} or --precision 32-true")."""

    def __init__(
        self,
        fabric: Any,
        *,
        epochs: int,
        seed: int,
        checkpoints: Checkpointer | None = None,
        log_dir: Path | None = None,
        progress: bool = True,
        name: str = "training",
        hint: str = "",
        batch_size: int | None = None,
        metrics_csv: bool = False,
    ) -> None:
        self.fabric, self.epochs, self.seed_value, self.checkpoints = fabric, epochs, seed, checkpoints
        self.log_dir, self.progress, self.name, self.hint = log_dir, progress, name, hint
        self.batch_size, self.metrics_csv = batch_size, metrics_csv
        self.history: list[dict[str, Any]] = []
        self.restored: Restored | None = None
        self._board: Any = None

    @property
    def rank(self) -> int:
        return int(self.fabric.global_rank)

    @property
    def resumed_at(self) -> int | None:
        """Epochs already done when this process resumed the run (None: not resumed)."""
        return self.restored.epoch if self.restored is not None else None

    @property
    def start(self) -> int:
        return self.resumed_at or 0

    def resume(self) -> Restored | None:
        """The last checkpoint, if any (its history becomes this run's); refuses one written under other settings."""
        self.restored = self.checkpoints.load() if self.checkpoints is not None else None
        if self.restored is not None:
            self.history = list(self.restored.history)
        return self.restored

    def seed(self) -> None:
        """Each process's random state: the checkpoint's (same number of processes), else seeded by rank (and the
        epoch to resume at), so processes never draw the same numbers."""
        r = self.restored
        if r is not None and r.restore_rng(self.rank, int(self.fabric.world_size)):
            return
        torch.manual_seed(self.seed_value + 1000 * self.rank + self.start)

    def epoch(self, index: int, title: str | None = None) -> Epoch:
        return Epoch(index, self, title or f"epoch {index + 1}/{self.epochs}")

    def end(
        self,
        row: dict[str, Any],
        modules: dict[str, torch.nn.Module],
        optimizers: dict[str, Any],
        *,
        state: dict[str, Any] | None = None,
        snapshots: dict[str, tuple[int, dict[str, torch.Tensor]]] | None = None,
    ) -> None:
        """An epoch is done: its row joins the history, then a checkpoint, metrics.csv and TensorBoard."""
        self.history.append(row)
        if self.checkpoints is not None:
            self.checkpoints.save(row["epoch"], self.history, modules, optimizers, state=state, snapshots=snapshots)
        if self.log_dir is not None and self.rank == 0:
            from headstart.training.logs import TensorBoardLog, write_metrics_csv

            if self.metrics_csv:
                write_metrics_csv(self.log_dir, self.history)
            self._board = self._board or TensorBoardLog(self.log_dir)
            self._board.epoch(row)

    def close(self) -> None:
        if self._board is not None:
            self._board.close()
            self._board = None
