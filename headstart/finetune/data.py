"""Data for the loop: label encoding per task, a validation carve-out, items augmented under their own seed, and
each epoch's batches (the engine's deterministic order, `headstart.training.batches`) cut for gradient accumulation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from headstart.backbones.base import Backbone
from headstart.data.dataset import Dataset
from headstart.training.batches import epoch_batches


@dataclass
class Tasks:
    """Label columns and their classes (sorted, as the heads' `classes_`), and labels as class indices."""

    names: list[str]
    classes: dict[str, list[str]]

    @classmethod
    def from_dataset(cls, ds: Dataset) -> Tasks:
        return cls(ds.tasks, {t: sorted({str(v) for v in ds.targets[t]}) for t in ds.tasks})

    def encode(self, ds: Dataset) -> np.ndarray:
        """(n_items, n_tasks) class indices; -1 for a label the training data never showed."""
        out = np.full((len(ds), len(self.names)), -1, dtype=np.int64)
        for j, task in enumerate(self.names):
            index = {c: i for i, c in enumerate(self.classes[task])}
            out[:, j] = [index.get(str(v), -1) for v in ds.targets[task]]
        return out


def carve_validation(train: Dataset, val_size: float, seed: int) -> tuple[Dataset, Dataset | None]:
    """Hold out `val_size` of the training items, stratified on the first task; None if too few to do so.
    With groups (e.g. the voice of each clip), whole groups are held out, as the test split holds them out: a
    validation score on voices seen in training would make early stopping optimistic."""
    if val_size <= 0:
        return train, None
    if train.groups is not None and len(set(train.groups)) > 1:
        from headstart.data.split import split
        from headstart.errors import DataError

        try:
            return split(train, test_size=val_size, seed=seed)
        except DataError:
            return train, None
    from sklearn.model_selection import train_test_split

    labels = np.asarray(train.labels, dtype=object)
    n_classes = len(set(labels.tolist()))
    n_val = int(round(len(train) * val_size))
    counts = np.unique(labels, return_counts=True)[1]
    if n_val < n_classes or len(train) - n_val < n_classes or counts.min() < 2:
        return train, None
    tr, va = train_test_split(np.arange(len(train)), test_size=n_val, stratify=labels, random_state=seed)
    return train.subset(np.sort(tr)), train.subset(np.sort(va))


def item_seed(seed: int, epoch: int, index: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + index) % (2**31)


class TrainItems(torch.utils.data.Dataset):
    """Items augmented under their own seed. Keys are `(epoch, index)` pairs (see `EpochBatches`), so one
    DataLoader, its workers kept alive, serves every epoch."""

    def __init__(self, items: list[Any], labels: np.ndarray, transform: Callable[[Any, int], Any], seed: int) -> None:
        self.items, self.labels, self.transform, self.seed = items, labels, transform, seed

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int]) -> tuple[Any, np.ndarray]:
        epoch, i = key
        return self.transform(self.items[i], item_seed(self.seed, epoch, i)), self.labels[i]


class EpochBatches:
    """A batch sampler whose batches are set before each epoch. A DataLoader with persistent workers draws the
    sampler in the main process at each `iter()`, so starting an epoch costs no new worker processes."""

    def __init__(self) -> None:
        self.batches: list[list[Any]] = []

    def set_epoch(self, epoch: int, batches: list[list[int]]) -> None:
        self.batches = [[(epoch, i) for i in batch] for batch in batches]

    def __iter__(self) -> Iterator[list[Any]]:
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class EvalItems(torch.utils.data.Dataset):
    def __init__(self, items: list[Any], labels: np.ndarray, backbone: Backbone) -> None:
        self.items, self.labels, self.backbone = items, labels, backbone

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[Any, np.ndarray]:
        return self.backbone.prepare(self.items[i]), self.labels[i]


@dataclass(frozen=True)
class MicroBatch:
    """A loaded batch's place in gradient accumulation."""

    step: int  # the optimizer step of the epoch it contributes to
    share: float  # its items / its step's items: the weight of its mean loss in the step's mean loss
    first: bool  # the step's first batch (gradients start from zero)
    last: bool  # the step's last batch (gradients are synchronised, clipped and applied)


def accumulation_batches(steps: list[list[int]], batch_size: int) -> tuple[list[list[int]], list[MicroBatch]]:
    """Each optimizer step's items (an effective batch) cut into batches of `batch_size` to load one after the
    other, and each batch's place in its step. Accumulating over the cuts gives the gradient of the whole
    effective batch (BatchNorm statistics aside), so `batch_size=8, accumulate=4` trains as `batch_size=32`."""
    batches, places = [], []
    for k, items in enumerate(steps):
        cuts = [items[i : i + batch_size] for i in range(0, len(items), batch_size)]
        for j, cut in enumerate(cuts):
            batches.append(cut)
            places.append(MicroBatch(k, len(cut) / len(items), j == 0, j == len(cuts) - 1))
    return batches, places


def steps_per_epoch(n: int, batch_size: int, world_size: int) -> int:
    return len(epoch_batches(n, batch_size, seed=0, epoch=0, rank=0, world_size=world_size))


def loader(
    dataset: torch.utils.data.Dataset,
    batches: Iterable[list[Any]],
    backbone: Backbone,
    num_workers: int,
    *,
    pin_memory: bool = False,
) -> torch.utils.data.DataLoader:
    """A DataLoader over `batches` (lists of dataset keys) that can be iterated again and again: its workers stay
    alive between iterations (starting them cost a fraction of a second per epoch, per loader)."""
    return torch.utils.data.DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=num_workers,
        collate_fn=_Collate(backbone),
        prefetch_factor=2 if num_workers else None,
        persistent_workers=num_workers > 0,
        pin_memory=pin_memory,
    )


class _Collate:
    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone

    def __call__(self, rows: list[tuple[Any, np.ndarray]]) -> tuple[Any, torch.Tensor]:
        return self.backbone.collate([r[0] for r in rows]), torch.as_tensor(np.stack([r[1] for r in rows]))
