"""The in-memory description of a dataset: items, labels per task, where each item came from, what was skipped."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

Modality = Literal["image", "text", "audio"]
MODALITIES: tuple[str, ...] = ("image", "text", "audio")


@dataclass(frozen=True)
class DataIssue:
    """One item that could not be used: where it is (file, or file + row) and what is wrong with it."""

    where: str
    problem: str

    def __str__(self) -> str:
        return f"{self.where}: {self.problem}"


@dataclass
class Dataset:
    """Items of one modality with zero or more label columns ("tasks").

    `items` are image file paths (`pathlib.Path`) or decoded arrays (H x W or H x W x 3, uint8) for images,
    strings for text, audio file paths or 1-D float32 waveforms for audio.
    `where[i]` names item i for messages ("photos/cat/1.jpg", "news.csv row 12").
    `issues` lists every item that was skipped while loading, so nothing is dropped silently.
    `groups[i]`, when set, names the group item i belongs to (e.g. the speaker): splits keep each group whole.
    """

    modality: Modality
    items: list[Any]
    targets: dict[str, list[str]]
    where: list[str]
    source: str
    issues: list[DataIssue] = field(default_factory=list)
    groups: list[str] | None = None

    def __post_init__(self) -> None:
        n = len(self.items)
        if len(self.where) != n:
            raise ValueError(f"{self.source}: {len(self.where)} item names for {n} items")
        if self.groups is not None and len(self.groups) != n:
            raise ValueError(f"{self.source}: {len(self.groups)} groups for {n} items")
        for task, labels in self.targets.items():
            if len(labels) != n:
                raise ValueError(f"{self.source}: label column {task!r} has {len(labels)} labels for {n} items")

    def __len__(self) -> int:
        return len(self.items)

    @property
    def tasks(self) -> list[str]:
        return list(self.targets)

    @property
    def labelled(self) -> bool:
        return bool(self.targets)

    @property
    def labels(self) -> list[str]:
        """Labels of the first task."""
        if not self.targets:
            raise ValueError(f"{self.source} has no labels")
        return next(iter(self.targets.values()))

    def subset(self, indices: Sequence[int] | np.ndarray) -> Dataset:
        idx = [int(i) for i in indices]
        return Dataset(
            modality=self.modality,
            items=[self.items[i] for i in idx],
            targets={t: [labels[i] for i in idx] for t, labels in self.targets.items()},
            where=[self.where[i] for i in idx],
            source=self.source,
            issues=list(self.issues),
            groups=None if self.groups is None else [self.groups[i] for i in idx],
        )

    def content_hashes(self) -> list[str]:
        """A sha256 per item over its content (file bytes, array bytes + shape, or UTF-8 text)."""
        return [content_hash(item) for item in self.items]

    def fingerprint(self) -> str:
        """A short hash over every item's content and every label: equal fingerprints mean equal datasets."""
        h = hashlib.sha256()
        for ch in self.content_hashes():
            h.update(ch.encode())
        for task, labels in sorted(self.targets.items()):
            h.update(task.encode())
            for label in labels:
                h.update(b"\0" + str(label).encode())
        return h.hexdigest()[:16]


def content_hash(item: Any) -> str:
    h = hashlib.sha256()
    if isinstance(item, str):
        h.update(b"text\0" + item.encode("utf-8", "surrogatepass"))
    elif isinstance(item, Path):
        h.update(b"file\0")
        with open(item, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    elif isinstance(item, np.ndarray):
        arr = np.ascontiguousarray(item)
        h.update(f"array\0{arr.dtype.str}{arr.shape}".encode())
        h.update(arr.tobytes())
    else:
        raise TypeError(f"cannot hash an item of type {type(item).__name__}")
    return h.hexdigest()
