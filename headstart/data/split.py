"""Deterministic stratified (or group-wise) train/test splits, optionally keeping only a few labelled items per
class."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from headstart.data.dataset import Dataset
from headstart.errors import DataError


def split(
    ds: Dataset,
    *,
    test_size: float = 0.25,
    seed: int = 0,
    labels_per_class: int | None = None,
    task: str | None = None,
) -> tuple[Dataset, Dataset]:
    """Split `ds` into (train, test), stratified on the labels of `task` (default: the first task).

    The same seed gives the same split. With `labels_per_class`, at most that many train items per class are
    kept (a seeded random choice); the test set is left as it is. Both parts keep the source's issues.
    When `ds.groups` is set (e.g. the speaker of each clip), whole groups go to one side: the test part holds
    groups never seen in training, so its score measures generalisation to new groups.
    """
    labels = np.asarray(_labels(ds, task), dtype=object)
    column = task or ds.tasks[0]
    if not 0.0 < test_size < 1.0:
        raise DataError(f"test_size must lie strictly between 0 and 1, not {test_size}")
    if labels_per_class is not None and labels_per_class < 1:
        raise DataError(f"labels_per_class must be at least 1, not {labels_per_class}")

    counts = Counter(labels.tolist())
    if len(counts) < 2:
        (only,) = counts
        raise DataError(f"only one class ({only!r}) in column {column!r} of {ds.source}; at least 2 are needed")
    too_few = sorted(c for c, k in counts.items() if k < 2)
    if too_few:
        listed = ", ".join(repr(c) for c in too_few[:10]) + (" ..." if len(too_few) > 10 else "")
        many = len(too_few) > 1
        raise DataError(
            f"{'classes' if many else 'class'} {listed} in column {column!r} of {ds.source} "
            f"{'have' if many else 'has'} only 1 item{' each' if many else ''}; "
            "a class needs at least 2 items to be split into train and test"
        )
    n, k = len(labels), len(counts)
    n_test = math.ceil(test_size * n)
    if n_test < k or n - n_test < k:
        raise DataError(
            f"{ds.source}: test_size={test_size} gives {n - n_test} train and {n_test} test items for {k} "
            f"classes in column {column!r}; each part needs one item per class, change test_size or add data"
        )

    if ds.groups is not None:
        train_idx, test_idx = _group_split(labels, ds.groups, test_size, seed, f"column {column!r} of {ds.source}")
    else:
        from sklearn.model_selection import train_test_split

        train_idx, test_idx = train_test_split(
            np.arange(n), test_size=n_test, random_state=seed, shuffle=True, stratify=labels
        )
    train_idx = np.sort(train_idx)
    if labels_per_class is not None:
        train_idx = _few_per_class(train_idx, labels, labels_per_class, seed)
    return ds.subset(train_idx), ds.subset(np.sort(test_idx))


GROUP_TRIES = 50


def _group_split(
    labels: np.ndarray, groups: list[str], test_size: float, seed: int, what: str
) -> tuple[np.ndarray, np.ndarray]:
    """Whole groups to the test part, about `test_size` of the items, drawn at random (seeded) until every class
    has items on both sides (or, failing that, at least in training)."""
    group_of = np.asarray([str(g) for g in groups], dtype=object)
    names = sorted(set(group_of.tolist()))
    if len(names) < 2:
        raise DataError(f"{what}: all items belong to one group ({names[0]!r}); a group-wise split needs at least 2")
    classes = set(labels.tolist())
    rng = np.random.default_rng(seed)
    n_target = test_size * len(labels)
    fallback = None
    for _ in range(GROUP_TRIES):
        order = rng.permutation(len(names))
        test_groups: set[str] = set()
        count = 0
        for k in order[: len(names) - 1]:
            if count >= n_target:
                break
            test_groups.add(names[k])
            count += int((group_of == names[k]).sum())
        mask = np.isin(group_of, list(test_groups))
        in_train, in_test = set(labels[~mask].tolist()), set(labels[mask].tolist())
        if in_train == classes and in_test == classes:
            return np.flatnonzero(~mask), np.flatnonzero(mask)
        if in_train == classes and fallback is None:
            fallback = (np.flatnonzero(~mask), np.flatnonzero(mask))
    if fallback is not None:
        return fallback
    raise DataError(
        f"{what}: no split of the {len(names)} groups leaves every class with training items; "
        "add groups, or drop the grouping"
    )


def _labels(ds: Dataset, task: str | None) -> list[str]:
    if not ds.labelled:
        raise DataError(f"{ds.source} has no labels; splitting needs a label column (or class sub-folders)")
    if task is None:
        return ds.labels
    if task not in ds.targets:
        raise DataError(f"{ds.source} has no label column {task!r}; its label columns are: {', '.join(ds.tasks)}")
    return ds.targets[task]


def few_per_class(ds: Dataset, per_class: int, *, seed: int = 0) -> Dataset:
    """At most `per_class` items of each class of `ds` (a seeded random choice), in source order."""
    if per_class < 1:
        raise DataError(f"labels_per_class must be at least 1, not {per_class}")
    labels = np.asarray(_labels(ds, None), dtype=object)
    return ds.subset(_few_per_class(np.arange(len(ds)), labels, per_class, seed))


def _few_per_class(train_idx: np.ndarray, labels: np.ndarray, per_class: int, seed: int) -> np.ndarray:
    """At most `per_class` train indices per class, chosen at random (seeded), returned in source order."""
    rng = np.random.default_rng(seed)
    chosen = []
    train_labels = labels[train_idx]
    for cls in sorted(set(train_labels.tolist())):
        members = train_idx[train_labels == cls]
        take = min(per_class, len(members))
        chosen.append(rng.choice(members, size=take, replace=False))
    return np.sort(np.concatenate(chosen))
