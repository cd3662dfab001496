"""`finetune`: split the data, train backbone and heads together, evaluate on the held-out split, save a bundle.

It returns a `TransferModel` whose `report` has the same shape as `headstart.fit`'s, plus a `finetune` section
(strategy, epochs run, best epoch, per-epoch history). With `out`, the run folder holds the bundle (with
`backbone.safetensors`), report.json/.md, confusion matrix, `metrics.csv`, `learning-curve.png`,
`finetune-config.json` and `checkpoint/` (for `resume=True`).
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

from headstart.data import Dataset, load_data, split
from headstart.errors import DataError
from headstart.finetune.config import FinetuneConfig
from headstart.model import TransferModel


def finetune(
    data: Any,
    *,
    backbone: str | None = None,
    head: str = "linear",
    strategy: str = "finetune",
    epochs: int = 5,
    lr: float = 2e-3,
    batch_size: int = 32,
    out: str | Path | None = None,
    seed: int = 0,
    labels_per_class: int | None = None,
    test_size: float = 0.25,
    resume: bool = False,
    class_weight: str | None = None,
    strict: bool = False,
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    baseline: bool = True,
    progress: bool = True,
    **options: Any,
) -> TransferModel:
    """Fine-tune `backbone` with one `head` per label column; see `FinetuneConfig` for every other option
    (augment, weight_decay, dropout, label_smoothing, l2sp, patience, val_size, devices, precision, ...)."""
    from headstart.backbones import create_backbone
    from headstart.finetune.data import Tasks, carve_validation
    from headstart.finetune.loop import make_fabric, train
    from headstart.finetune.outputs import write_config

    config = FinetuneConfig.from_options(
        head=head,
        strategy=strategy,
        epochs=epochs,
        lr=lr,
        batch_size=batch_size,
        seed=seed,
        class_weight=class_weight,
        **options,
    )
    fabric = make_fabric(config)  # first: with DDP, this starts the other processes, which run this same call
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    ds = (
        data
        if isinstance(data, Dataset)
        else load_data(data, text_column=text_column, label_columns=label_columns, strict=strict)
    )
    train_ds, test = split(ds, test_size=test_size, seed=seed, labels_per_class=labels_per_class)
    fit_ds, val_ds = carve_validation(train_ds, config.loop.val_size, seed)
    bb = create_backbone(backbone or _default_backbone(ds.modality))
    if bb.modality != ds.modality:
        raise DataError(f"{ds.source} holds {ds.modality} data but backbone {bb.spec} encodes {bb.modality}")
    tasks = Tasks.from_dataset(fit_ds)
    folder = Path(out) if out is not None else None
    timing["load"] = time.perf_counter() - t0
    if folder is not None and fabric.global_rank == 0:
        folder.mkdir(parents=True, exist_ok=True)
        context = {
            "data": ds.source,
            "backbone": bb.spec,
            "labels_per_class": labels_per_class,
            "test_size": test_size,
            "n_train": len(fit_ds),
            "n_val": len(val_ds) if val_ds else 0,
            "n_test": len(test),
            "tasks": tasks.classes,
        }
        write_config(folder, config.to_json(), context)

    t0 = time.perf_counter()
    result = train(fabric, bb, fit_ds, val_ds, tasks, config, folder, resume=resume, progress=progress)
    timing["train"] = time.perf_counter() - t0
    model = _transfer_model(bb, result, tasks, config)
    model.data_info = {
        "source": ds.source,
        "fingerprint": ds.fingerprint(),
        "modality": ds.modality,
        "n_items": len(ds),
        "n_train": len(fit_ds),
        "n_val": len(val_ds) if val_ds else 0,
        "n_test": len(test),
        "labels_per_class": labels_per_class,
        "test_size": test_size,
        "seed": seed,
        "skipped": len(ds.issues),
    }
    if result.global_rank != 0:  # the other processes of a distributed run leave evaluating and saving to rank 0
        model.report = {"global_rank": result.global_rank}
        return model

    t0 = time.perf_counter()
    metrics = _evaluate(model, train_ds, test, ds.tasks, seed, baseline, batch_size, progress)
    timing["evaluate"] = time.perf_counter() - t0
    _finish(model, ds, metrics, timing, result, config, folder)
    return model


def _default_backbone(modality: str) -> str:
    from headstart.backbones.registry import default_backbone

    return default_backbone(modality)


def _transfer_model(bb: Any, result: Any, tasks: Any, config: FinetuneConfig) -> TransferModel:
    """The trained network as a TransferModel: backbone weights marked as tuned, heads as fitted estimators."""
    from headstart.finetune.net import export_heads
    from headstart.finetune.strategies import merge_lora

    if config.strategy.strategy == "lora":
        merge_lora(result.net.encoder)
    bb.module.cpu().eval()
    digest = hashlib.sha256()
    for name, tensor in sorted(bb.module.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    bb.weights_id = f"finetuned-{digest.hexdigest()[:16]}"  # the feature cache must never mix these up
    heads = export_heads(result.net, tasks.classes, config)
    info = {**bb.describe(), "fine_tuned": {"strategy": config.strategy.strategy, "best_epoch": result.best_epoch}}
    return TransferModel(bb.spec, info, heads, _backbone=bb, tuned_backbone=True)


def _evaluate(
    model: TransferModel,
    train: Dataset,
    test: Dataset,
    tasks: list[str],
    seed: int,
    baseline: bool,
    batch_size: int,
    progress: bool,
) -> dict[str, Any]:
    from headstart.evaluation import classification_metrics, runs
    from headstart.evaluation.baselines import baseline_name, baseline_predict
    from headstart.features import extract_features

    x_test = extract_features(model.backbone, test, batch_size=batch_size, cache=False, progress=progress)
    metrics = runs.evaluate_model(model, test, x_test)
    if baseline:
        for task in tasks:
            pred = baseline_predict(train, test, task, seed=seed)
            base = classification_metrics(test.targets[task], pred, metrics[task]["labels"])
            metrics[task]["baseline"] = {"name": baseline_name(test.modality), **runs.summary(base)}
    return metrics


def _finish(
    model: TransferModel,
    ds: Dataset,
    metrics: dict[str, Any],
    timing: dict[str, float],
    result: Any,
    config: FinetuneConfig,
    folder: Path | None,
) -> None:
    from headstart.evaluation import runs
    from headstart.finetune.outputs import CURVE_FILE, METRICS_FILE, TENSORBOARD_DIR, learning_curve_png

    s = config.strategy.strategy
    model.metrics = {task: runs.summary(m) for task, m in metrics.items()}
    title = f"fine-tune ({s}): {ds.source} with {model.backbone_spec}"
    model.report = runs.build_report(model, ds, config.head.head, metrics, timing, title=title)
    model.report["strategy"] = s
    model.report["finetune"] = {
        "strategy": s,
        "epochs_run": len(result.history),
        "best_epoch": result.best_epoch,
        "resumed_at_epoch": result.resumed_at,
        "world_size": result.world_size,
        "parameters": result.parameters,
        "history": result.history,
        "config": config.to_json(),
    }
    if folder is not None:
        learning_curve_png(result.history, folder / CURVE_FILE, title, result.best_epoch)
        model.report["finetune"].update({"metrics_csv": METRICS_FILE, "learning_curve_png": CURVE_FILE})
        if (folder / TENSORBOARD_DIR).is_dir():
            model.report["finetune"]["tensorboard"] = TENSORBOARD_DIR
        runs.save_run(model, folder, metrics)
