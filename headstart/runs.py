"""The front door of a run: which labelled items train the saved model, and where its quoted accuracy comes from.

Three ways to measure, one rule for the saved model (every label counts):
- a held-out split (`test_size`, the default 0.25): heads are scored on it, then the saved model is refit on every
  labelled item, train and test together (unless `labels_per_class` simulates a small labelled set: then the saved
  model learns from those items only, and the rest stay unlabelled, as in the user's real situation);
- a separate labelled set (`test`): the saved model learns from all of `data` and is scored on `test`;
- none (`test_size=0`): the saved model learns from all of `data`; the quoted accuracy is cross-validated on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from headstart.data import Dataset, split
from headstart.data.split import few_per_class
from headstart.errors import DataError

CV_FOLDS = 5


@dataclass
class Partition:
    """`train` scores against `test` (None: cross-validation on `train`); `final` trains the saved model."""

    train: Dataset
    test: Dataset | None
    final: Dataset
    estimate: str  # "held-out split", "separate test set" or "cross-validation"
    test_size: float = 0.25
    labels_per_class: int | None = None

    @property
    def refits(self) -> bool:
        return self.final is not self.train

    def describe(self, source: str, test_source: str | None = None) -> dict[str, str]:
        """The report's plain-words account of which items trained the saved model and what the accuracy means."""
        n_final = len(self.final)
        if self.estimate == "separate test set":
            where = f"the separate labelled set {test_source} ({len(self.test or [])} items)"
        elif self.estimate == "cross-validation":
            where = (
                f"{CV_FOLDS}-fold cross-validation (out-of-fold predictions) on the {len(self.train)} training items"
            )
        else:
            where = (
                f"a held-out split of {len(self.test or [])} items of {source}, scoring a model trained on the other "
                f"{len(self.train)}"
            )
        if self.refits:
            trained = f"all {n_final} labelled items of {source} (train and test together, refit after scoring)"
        else:
            trained = f"{n_final} labelled items of {source}"
        return {"trained_on": trained, "accuracy_from": where, "n_final": str(n_final)}


def partition(
    ds: Dataset,
    *,
    test: Dataset | None = None,
    test_size: float = 0.25,
    seed: int = 0,
    labels_per_class: int | None = None,
    refit: bool = True,
) -> Partition:
    """The items that score the recipe and the items that train the saved model; see the module's docstring."""
    if test is not None:
        if test.modality != ds.modality:
            raise DataError(
                f"the test set {test.source} holds {test.modality} data but {ds.source} holds {ds.modality}"
            )
        missing = [t for t in ds.tasks if t not in test.targets]
        if missing:
            raise DataError(f"the test set {test.source} has no label column {missing[0]!r}, which {ds.source} has")
        train = few_per_class(ds, labels_per_class, seed=seed) if labels_per_class else ds
        return Partition(train, test, train, "separate test set", 0.0, labels_per_class)
    if test_size == 0:
        train = few_per_class(ds, labels_per_class, seed=seed) if labels_per_class else ds
        _check_cv(train)
        return Partition(train, None, train, "cross-validation", 0.0, labels_per_class)
    train, held_out = split(ds, test_size=test_size, seed=seed, labels_per_class=labels_per_class)
    final = concat(train, held_out) if refit and labels_per_class is None else train
    return Partition(train, held_out, final, "held-out split", test_size, labels_per_class)


def concat(a: Dataset, b: Dataset) -> Dataset:
    """The items of `a` then `b`, one dataset (the issues of `a`, which loaded both)."""
    groups = None if a.groups is None or b.groups is None else a.groups + b.groups
    return Dataset(
        modality=a.modality,
        items=a.items + b.items,
        targets={t: a.targets[t] + b.targets[t] for t in a.targets},
        where=a.where + b.where,
        source=a.source,
        issues=a.issues,
        groups=groups,
    )


def _check_cv(ds: Dataset) -> None:
    from collections import Counter

    for task in ds.tasks:
        counts = Counter(ds.targets[task])
        if len(counts) < 2:
            raise DataError(f"only one class in column {task!r} of {ds.source}; at least 2 are needed")
        rare = sorted(c for c, k in counts.items() if k < 2)
        if rare:
            raise DataError(
                f"class {rare[0]!r} in column {task!r} of {ds.source} has 1 item; with --test-size 0 each class needs "
                "at least 2 for a cross-validated estimate"
            )


def cv_predictions(fit_predict: Any, ds: Dataset, task: str, *, seed: int) -> list[str]:
    """Out-of-fold predictions for every item of `ds`: `fit_predict(train_idx, test_idx)` returns labels for
    test_idx. Folds are stratified (grouped when `ds.groups` is set), at most CV_FOLDS of them."""
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    y = np.asarray(ds.targets[task], dtype=object)
    k = int(min(CV_FOLDS, min(np.unique(y, return_counts=True)[1])))
    if ds.groups is not None and len(set(ds.groups)) >= k:
        splits = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y, ds.groups)
    else:
        splits = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y)
    out = np.empty(len(y), dtype=object)
    for tr, te in splits:
        out[te] = list(fit_predict(tr, te))
    return [str(v) for v in out]
