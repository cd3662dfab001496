"""The Python API: the three steps of transfer learning (extract, fit a head, predict), plus evaluation and saving.

import headstart as hs
model = hs.fit("samples:bbc-news", backbone="st:all-MiniLM-L6-v2", labels_per_class=16)
model.predict(["Shares fell sharply on Monday"])
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from headstart.backbones.registry import DEFAULT_BACKBONES, default_backbone
from headstart.data import Dataset, load_data, split
from headstart.evaluation.runs import build_report as _report
from headstart.evaluation.runs import evaluate_model as _evaluate
from headstart.evaluation.runs import save_run
from headstart.evaluation.runs import summary as _summary
from headstart.evaluation.runs import write_outputs as _write_outputs
from headstart.model import TransferModel, as_dataset

__all__ = [
    "DEFAULT_BACKBONES",
    "backbones",
    "default_backbone",
    "diagnose",
    "embed",
    "evaluate",
    "fit",
    "load",
    "load_dataset",
    "predict",
    "rank",
    "save_run",
]


def load_dataset(
    data: Any,
    *,
    modality: str | None = None,
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    strict: bool = False,
) -> Dataset:
    """A Dataset from a source string (`samples:NAME`, a folder, a table), in-memory items, or pass one through."""
    if isinstance(data, Dataset):
        return data
    if not isinstance(data, (str, Path)):
        from headstart.data import from_arrays

        return from_arrays(data, modality=modality)
    return load_data(data, modality=modality, text_column=text_column, label_columns=label_columns, strict=strict)


def embed(
    data: Any,
    *,
    backbone: str | None = None,
    out: str | Path | None = None,
    batch_size: int = 32,
    cache: bool = True,
    progress: bool = True,
    text_column: str | None = None,
    strict: bool = False,
) -> np.ndarray:
    """Step 1, `f_feat(x) = f_enc(x)`: features of every item, through the on-disk cache."""
    from headstart.backbones import create_backbone
    from headstart.features import extract_features

    ds = load_dataset(data, text_column=text_column, strict=strict)
    bb = create_backbone(backbone or default_backbone(ds.modality))
    _check_modality(bb.modality, ds, bb.spec)
    return extract_features(bb, ds, batch_size=batch_size, cache=cache, progress=progress, out=out)


def fit(
    data: Any,
    *,
    backbone: str | None = None,
    head: str = "linear",
    out: str | Path | None = None,
    test_size: float = 0.25,
    labels_per_class: int | None = None,
    seed: int = 0,
    strict: bool = False,
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    class_weight: str | None = None,
    head_params: dict[str, Any] | None = None,
    batch_size: int = 32,
    baseline: bool = True,
    progress: bool = True,
    strategy: str = "probe",
    **finetune_options: Any,
) -> TransferModel:
    """Steps 1 and 2: extract features with a frozen backbone and fit one head per label column.

    The data is split (stratified, seeded) into train and test; with `labels_per_class`, only that many labelled
    training items per class are used. The returned model carries `report` (metrics, baseline, timing, skipped items);
    with `out`, the model is saved there as a bundle with report.json, report.md and confusion-matrix PNGs.

    `strategy` other than "probe" (finetune, gradual, layer-decay, lora) trains the backbone too: see
    `headstart.finetune.finetune`, which receives `finetune_options` (epochs, lr, augment, l2sp, devices, ...).
    """
    if strategy != "probe":
        from headstart.finetune import finetune

        return finetune(
            data,
            backbone=backbone,
            head=head,
            strategy=strategy,
            out=out,
            test_size=test_size,
            labels_per_class=labels_per_class,
            seed=seed,
            strict=strict,
            text_column=text_column,
            label_columns=label_columns,
            class_weight=class_weight,
            batch_size=batch_size,
            baseline=baseline,
            progress=progress,
            **(head_params or {}),
            **finetune_options,
        )
    if finetune_options:
        raise TypeError(f"fit() options {', '.join(sorted(finetune_options))} apply only to fine-tuning strategies")
    from headstart.backbones import create_backbone
    from headstart.evaluation.baselines import baseline_name, baseline_predict
    from headstart.features import extract_features
    from headstart.heads import make_head

    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    ds = load_dataset(data, text_column=text_column, label_columns=label_columns, strict=strict)
    train, test = split(ds, test_size=test_size, seed=seed, labels_per_class=labels_per_class)
    timing["load"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    bb = create_backbone(backbone or default_backbone(ds.modality))
    _check_modality(bb.modality, ds, bb.spec)
    both = extract_features(bb, _concat(train, test), batch_size=batch_size, progress=progress)
    x_train, x_test = both[: len(train)], both[len(train) :]
    timing["extract"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    params = {"class_weight": class_weight, "random_state": seed, **(head_params or {})}
    heads = {task: make_head(head, **params).fit(x_train, train.targets[task]) for task in ds.tasks}
    timing["fit"] = time.perf_counter() - t0

    model = TransferModel(bb.spec, bb.describe(), heads, _backbone=bb)
    model.data_info = {
        "source": ds.source,
        "fingerprint": ds.fingerprint(),
        "modality": ds.modality,
        "n_items": len(ds),
        "n_train": len(train),
        "n_test": len(test),
        "labels_per_class": labels_per_class,
        "test_size": test_size,
        "seed": seed,
        "skipped": len(ds.issues),
    }
    t0 = time.perf_counter()
    metrics = _evaluate(model, test, x_test)
    if baseline:
        from headstart.evaluation import classification_metrics

        for task in ds.tasks:
            pred = baseline_predict(train, test, task, seed=seed)
            base = classification_metrics(test.targets[task], pred, metrics[task]["labels"])
            metrics[task]["baseline"] = {"name": baseline_name(ds.modality), **_summary(base)}
    timing["evaluate"] = time.perf_counter() - t0
    model.metrics = {task: _summary(m) for task, m in metrics.items()}
    model.report = _report(model, ds, head, metrics, timing, title=f"fit: {ds.source} with {bb.spec}")
    if out is not None:
        save_run(model, out, metrics)
    return model


def evaluate(
    model: TransferModel | str | Path,
    data: Any,
    *,
    out: str | Path | None = None,
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    strict: bool = False,
    progress: bool = True,
    noise_snr: float | None = None,
) -> dict[str, Any]:
    """Metrics of a fitted model on every labelled item of `data` (no split): a report dict, saved when `out` is set.
    Audio only: `noise_snr` adds white noise at that SNR (dB, seeded per item) to every clip, a robustness check."""
    from headstart.errors import DataError

    model = load(model) if not isinstance(model, TransferModel) else model
    ds = load_dataset(
        data, modality=model.modality, text_column=text_column, label_columns=label_columns, strict=strict
    )
    if noise_snr is not None:
        from headstart.data.audio import with_noise

        rate = getattr(getattr(model.backbone, "audio_preprocessing", None), "sample_rate", 16_000)
        ds = with_noise(ds, noise_snr, sample_rate=rate)
    missing = [t for t in model.tasks if t not in ds.targets]
    if missing:
        raise DataError(
            f"{ds.source} has no label column {missing[0]!r}, which the model predicts; it has: "
            f"{', '.join(ds.tasks) or 'no labels'}"
        )
    x = model.embed(ds, progress=progress)
    metrics = _evaluate(model, ds, x)
    report = _report(model, ds, "", metrics, {}, title=f"evaluate: {ds.source}")
    if out is not None:
        _write_outputs(Path(out), report, metrics)
    return report


def predict(model: TransferModel | str | Path, inputs: Any, *, top_k: int = 1) -> list[dict[str, Any]]:
    """Step 3, `ŷ = f_clf(f_feat(x))`: the label and its probability for each input, per task."""
    model = load(model) if not isinstance(model, TransferModel) else model
    ds = as_dataset(inputs, model.modality)
    x = model.embed(ds)
    rows: list[dict[str, Any]] = [{"input": w} for w in ds.where]
    for task in model.tasks:
        proba = model.heads[task].predict_proba(x)
        classes = [str(c) for c in model.heads[task].classes_]
        for row, p in zip(rows, proba):
            best = np.argsort(-p)[:top_k]
            row[task] = classes[best[0]]
            row[f"{task}_probability"] = float(p[best[0]])
            if top_k > 1:
                row[f"{task}_top"] = [{"label": classes[i], "probability": float(p[i])} for i in best]
    return rows


def load(path: str | Path) -> TransferModel:
    """A model saved by `fit(..., out=...)` or `model.save(...)`."""
    from headstart.bundle import load_bundle

    return load_bundle(path)


def backbones() -> list[dict[str, Any]]:
    """Every registered backbone, and whether it loads offline right now."""
    from headstart.backbones import list_backbones

    return list_backbones()


def rank(
    data: Any,
    *,
    backbones: list[str],
    score: str = "logme",
    labels_per_class: int | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    strict: bool = False,
    **options: Any,
) -> Any:
    """Rank candidate backbones for `data` by transferability scores, before fitting anything; returns a Ranking
    (`.results` best first, `.recommended`). Other `options`: see `headstart.select.ranking.rank`."""
    from headstart.select.ranking import rank as run

    ds = load_dataset(data, text_column=text_column, label_columns=label_columns, strict=strict)
    return run(ds, backbones, score=score, labels_per_class=labels_per_class, seed=seed, out=out, **options)


def diagnose(
    data: Any,
    *,
    target: Any = None,
    backbone: str | None = None,
    out: str | Path | None = None,
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    strict: bool = False,
    **options: Any,
) -> Any:
    """Data diagnostics on one backbone's embeddings: balance, duplicates and leakage, suspect labels, outliers, and
    a domain-shift test against `target`; returns a Diagnosis. Other `options`: see `headstart.select.diagnose`."""
    from headstart.select.diagnose import diagnose as run

    ds = load_dataset(data, text_column=text_column, label_columns=label_columns, strict=strict)
    other = None if target is None else load_dataset(target, modality=ds.modality, text_column=text_column)
    return run(ds, target=other, backbone=backbone or default_backbone(ds.modality), out=out, **options)


def _concat(a: Dataset, b: Dataset) -> Dataset:
    return Dataset(
        modality=a.modality,
        items=a.items + b.items,
        targets={t: a.targets[t] + b.targets[t] for t in a.targets},
        where=a.where + b.where,
        source=a.source,
        issues=a.issues,
    )


def _check_modality(modality: str, ds: Dataset, spec: str) -> None:
    from headstart.errors import DataError

    if modality != ds.modality:
        raise DataError(f"{ds.source} holds {ds.modality} data but backbone {spec} encodes {modality}")
