"""The front door of a run, and its way out: every recipe (probe, auto, fine-tuning, lr-find) loads its data,
picks the backbone and partitions the labels here (`open_run`), and finishes here (metrics, report, run folder).

Which labelled items train the saved model, and where its quoted accuracy comes from:

Three ways to measure, one rule for the saved model (every label counts):
- a held-out split (`test_size`, the default 0.25): heads are scored on it, then the saved model is refit on every
  labelled item, train and test together (unless `labels_per_class` simulates a small labelled set: then the saved
  model learns from those items only, and the rest stay unlabelled, as in the user's real situation);
- a separate labelled set (`test`): the saved model learns from all of `data` and is scored on `test`;
- none (`test_size=0`): the saved model learns from all of `data`; the quoted accuracy is cross-validated on it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headstart.data import Dataset, split
from headstart.data.split import few_per_class
from headstart.errors import DataError

if TYPE_CHECKING:
    from headstart.model import TransferModel

CV_FOLDS = 5


def load_dataset(
    data: Any,
    *,
    modality: str | None = None,
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    strict: bool = False,
) -> Dataset:
    """A Dataset from a source string (`samples:NAME`, a folder, a table), in-memory items, or pass one through."""
    from headstart.data import from_arrays, load_data

    if isinstance(data, Dataset):
        return data
    if not isinstance(data, (str, Path)):
        return from_arrays(data, modality=modality)
    return load_data(data, modality=modality, text_column=text_column, label_columns=label_columns, strict=strict)


@dataclass
class Run:
    """What a recipe starts from: the loaded data, how its labels are partitioned, and the backbone specs."""

    data: Dataset
    part: Partition
    backbones: list[str]
    test_source: str | None
    load_s: float


def open_run(
    data: Any,
    *,
    backbone: str | list[str] | None = None,
    test: Any = None,
    test_size: float = 0.25,
    seed: int = 0,
    labels_per_class: int | None = None,
    refit: bool = True,
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    strict: bool = False,
) -> Run:
    """Load `data` (and `test`) from any source, in-memory items included, partition the labels, and name the
    backbone(s): the modality's default where none is given. The backbones are not built here (that is costly and
    some recipes never need to); `check_modality` runs when one is."""
    from headstart.backbones.registry import default_backbone

    t0 = time.perf_counter()
    ds = load_dataset(data, text_column=text_column, label_columns=label_columns, strict=strict)
    test_ds = None
    if test is not None:
        columns = {"text_column": text_column, "label_columns": label_columns, "strict": strict}
        test_ds = load_dataset(test, modality=ds.modality, **columns)
    part = partition(ds, test=test_ds, test_size=test_size, seed=seed, labels_per_class=labels_per_class, refit=refit)
    specs = [backbone] if isinstance(backbone, str) or backbone is None else list(backbone)
    specs = [s or default_backbone(ds.modality) for s in specs]
    test_source = test_ds.source if test_ds is not None else None
    return Run(ds, part, specs, test_source, time.perf_counter() - t0)


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


def data_info(ds: Dataset, part: Partition, seed: int) -> dict[str, Any]:
    """The saved model's account of its data: where it came from and which items trained and scored it."""
    return {
        "source": ds.source,
        "fingerprint": ds.fingerprint(),
        "modality": ds.modality,
        "n_items": len(ds),
        "n_train": len(part.final),
        "n_scored_train": len(part.train),
        "n_test": len(part.test) if part.test is not None else 0,
        "estimate": part.estimate,
        "test_size": part.test_size,
        "labels_per_class": part.labels_per_class,
        "seed": seed,
        "skipped": len(ds.issues),
    }


def evaluate_model(model: TransferModel, ds: Dataset, x: np.ndarray) -> dict[str, Any]:
    """Full classification metrics of each of the model's heads on `ds`, from its features `x`."""
    from headstart.evaluation import classification_metrics

    out = {}
    for task, head in model.heads.items():
        labels = [str(c) for c in head.classes_]
        extra = sorted(set(ds.targets[task]) - set(labels))
        out[task] = classification_metrics(ds.targets[task], model.predict(ds, task=task, features=x), labels + extra)
    return out


def summary(m: dict[str, Any]) -> dict[str, Any]:
    kept = ("accuracy", "balanced_accuracy", "macro_f1", "n")
    return {k: m[k] for k in kept if k in m}


def build_report(
    model: TransferModel, ds: Dataset, head: str, metrics: dict, timing: dict, *, title: str
) -> dict[str, Any]:
    info = model.data_info
    report = {
        "title": title,
        "backbone": model.backbone_spec,
        "head": head or ", ".join(sorted({h.kind for h in model.heads.values()})),
        "data": ds.source,
        "fingerprint": ds.fingerprint(),
        "tasks": metrics,
        "timing_s": timing,
        "skipped": [str(i) for i in ds.issues],
    }
    for key in ("seed", "labels_per_class", "n_train", "n_test"):
        if key in info and not title.startswith("evaluate"):
            report[key] = info[key]
    return report


def write_outputs(out: Path, report: dict[str, Any], metrics: dict[str, Any]) -> None:
    """report.json, report.md and a confusion-matrix PNG per task, in `out`."""
    from headstart.evaluation import write_report
    from headstart.evaluation.plots import confusion_png

    out.mkdir(parents=True, exist_ok=True)
    for task, m in metrics.items():
        name = "confusion.png" if len(metrics) == 1 else f"confusion-{task}.png"
        acc = f"accuracy {m['accuracy']:.3f}, n={m['n']}"
        confusion_png(m["confusion"], m["labels"], out / name, f"{report['title']}\n{task}: {acc}")
        report["tasks"][task]["confusion_png"] = name
    write_report(out, report)


def save_run(model: TransferModel, out: str | Path, metrics: dict[str, Any]) -> Path:
    """The run folder: the model's bundle plus its report and plots, in one folder."""
    out = Path(out)
    model.save(out)
    write_outputs(out, model.report, metrics)
    return out
