"""`finetune`: split the data, train backbone and heads together, evaluate on the held-out split, save a bundle.

It returns a `TransferModel` whose `report` has the same shape as `headstart.fit`'s, plus a `finetune` section
(strategy, epochs run, best epoch, per-epoch history). With `out`, the run folder holds the bundle (with
`backbone.safetensors`), report.json/.md, confusion matrix, `metrics.csv`, `learning-curve.png`,
`finetune-config.json` and `checkpoint/` (for `resume=True`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from headstart.data import Dataset, load_data
from headstart.errors import DataError
from headstart.finetune.config import FinetuneConfig
from headstart.model import TransferModel
from headstart.runs import Partition, partition


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
    test: Any = None,
    refit: bool = True,
    part: Partition | None = None,
    test_source: str | None = None,
    **options: Any,
) -> TransferModel:
    """Fine-tune `backbone` with one `head` per label column; see `FinetuneConfig` for every other option
    (augment, weight_decay, dropout, label_smoothing, l2sp, patience, val_size, devices, precision, ...).

    Scored as `headstart.runs.partition` says; then, with `refit` and labels the scored model did not train on
    (the held-out split, the validation part), the saved model is trained again from the pretrained weights on
    every labelled item, for as many epochs as validation chose (the best epoch), with no validation part."""
    from headstart.backbones import create_backbone
    from headstart.backbones.registry import check_modality
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
    if part is None:
        test_ds = None
        if test is not None:
            test_ds = (
                test
                if isinstance(test, Dataset)
                else load_data(
                    test, modality=ds.modality, text_column=text_column, label_columns=label_columns, strict=strict
                )
            )
            test_source = test_ds.source
        part = partition(
            ds, test=test_ds, test_size=test_size, seed=seed, labels_per_class=labels_per_class, refit=refit
        )
    if part.test is None:
        raise DataError("fine-tuning scores on held-out items: give a test split (--test-size) or a test set (--test)")
    train_ds, test = part.train, part.test
    fit_ds, val_ds = carve_validation(train_ds, config.loop.val_size, seed)
    bb = create_backbone(backbone or _default_backbone(ds.modality))
    check_modality(bb, ds)
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
    scored = _transfer_model(bb, result, tasks, config)
    final_ds = part.final if part.refits else train_ds
    model, refit_epochs = scored, None
    if refit and len(final_ds) > len(fit_ds):
        t0 = time.perf_counter()
        refit_epochs = _refit_epochs(result, config)
        again = replace(
            config,
            loop=replace(config.loop, epochs=refit_epochs, val_size=0.0),
            regularisation=replace(config.regularisation, patience=None),
        )
        bb_final = create_backbone(backbone or _default_backbone(ds.modality))
        final = train(fabric, bb_final, final_ds, None, Tasks.from_dataset(final_ds), again, None, progress=progress)
        model = _transfer_model(bb_final, final, Tasks.from_dataset(final_ds), again)
        timing["refit"] = time.perf_counter() - t0
    model.data_info = {
        "source": ds.source,
        "fingerprint": ds.fingerprint(),
        "modality": ds.modality,
        "n_items": len(ds),
        "n_train": len(final_ds) if refit_epochs else len(fit_ds),
        "n_scored_train": len(fit_ds),
        "n_val": len(val_ds) if val_ds else 0,
        "n_test": len(test),
        "estimate": part.estimate,
        "labels_per_class": labels_per_class,
        "test_size": test_size,
        "seed": seed,
        "skipped": len(ds.issues),
    }
    if result.global_rank != 0:  # the other processes of a distributed run leave evaluating and saving to rank 0
        model.report = {"global_rank": result.global_rank}
        return model

    t0 = time.perf_counter()
    metrics = _evaluate(scored, train_ds, test, ds.tasks, seed, baseline, batch_size, progress)
    timing["evaluate"] = time.perf_counter() - t0
    _finish(model, ds, metrics, timing, result, config, folder)
    scored_on = f"the separate labelled set {test_source}" if test_source else "a held-out split"
    model.report["accuracy_from"] = (
        f"{scored_on} ({len(test)} items), scoring a model fine-tuned on {len(fit_ds)} items"
        + (f" ({len(val_ds)} more chose the epoch)" if val_ds else "")
    )
    model.report["trained_on"] = (
        f"all {len(final_ds)} labelled items given, retrained from the pretrained weights for {refit_epochs} epochs"
        if refit_epochs
        else f"the {len(fit_ds)} items the scored model trained on (refit off, or nothing more to learn from)"
    )
    model.report["finetune"]["refit_epochs"] = refit_epochs
    if folder is not None:
        from headstart import runs

        runs.save_run(model, folder, metrics)
    return model


def _refit_epochs(result: Any, config: FinetuneConfig) -> int:
    """The epochs to retrain for: those up to the best validation epoch (all that ran, without validation);
    for `gradual`, less the head-only epochs it adds by itself."""
    ran = len(result.history)
    best = result.best_epoch if result.best_epoch is not None else ran
    if config.strategy.strategy == "gradual":
        best -= config.strategy.freeze_epochs
    return max(1, int(best))


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
    from headstart import runs
    from headstart.evaluation import classification_metrics
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
    from headstart import runs
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
