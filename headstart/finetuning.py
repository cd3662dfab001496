"""The fine-tuning recipe: open the run (`headstart.runs`), fine-tune with `headstart.finetune`, build the
`TransferModel`, score it on the held-out items, refit on every label, write the run folder. And `lr_find`, the
learning-rate range test on the same run's training split.

`finetune` returns a `TransferModel` whose `report` has the same shape as `headstart.fit`'s, plus a `finetune`
section (strategy, epochs run, best epoch, per-epoch history). With `out`, the run folder holds the bundle (with
`backbone.safetensors`), report.json/.md, confusion matrix, `metrics.csv`, `learning-curve.png`,
`finetune-config.json` and `checkpoint/` (for `resume=True`).
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from headstart import runs
from headstart.data import Dataset
from headstart.errors import DataError
from headstart.finetune.config import FinetuneConfig
from headstart.model import TransferModel
from headstart.paths import atomic_file
from headstart.runs import Partition

CONFIG_FILE = "finetune-config.json"
CURVE_FILE = "learning-curve.png"


def finetune(
    data: Any,
    *,
    backbone: str | None = None,
    head: str = "linear",
    strategy: str = "finetune",
    epochs: int | None = None,
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

    `data` (and `test`): any source `headstart.runs.open_run` loads, in-memory items included, or a Dataset with
    its `part` already made. Scored as `headstart.runs.partition` says; then, with `refit` and labels the scored
    model did not train on (the held-out split, the validation part), the saved model is trained again from the
    pretrained weights on every labelled item, for as many epochs as validation chose (the best epoch), with no
    validation part. (The public API keeps its keyword options flat, as `headstart.fit` does.)"""
    from headstart.backbones import create_backbone
    from headstart.backbones.registry import check_modality, default_backbone
    from headstart.finetune.data import carve_validation
    from headstart.finetune.loop import train
    from headstart.training.fabric import make_fabric

    config = FinetuneConfig.from_options(
        head=head, strategy=strategy, epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
        class_weight=class_weight, **options,
    )  # fmt: skip
    fabric = make_fabric(config.distributed)  # first: with DDP, this starts the other processes, which run this call
    t0 = time.perf_counter()
    if part is None:
        opened = runs.open_run(
            data, backbone=backbone, test=test, test_size=test_size, seed=seed, labels_per_class=labels_per_class,
            refit=refit, text_column=text_column, label_columns=label_columns, strict=strict,
        )  # fmt: skip
        data, part, test_source = opened.data, opened.part, opened.test_source
    ds: Dataset = data
    if part.test is None:
        raise DataError("fine-tuning scores on held-out items: give a test split (--test-size) or a test set (--test)")
    spec = backbone or default_backbone(ds.modality)
    given = config
    config = config.sized_to(len(part.train), int(fabric.world_size), ds.modality)
    fit_ds, val_ds = carve_validation(part.train, config.loop.val_size, seed)
    bb = create_backbone(spec)
    check_modality(bb, ds)
    folder = Path(out) if out is not None else None
    timing = {"load": time.perf_counter() - t0}
    if folder is not None and fabric.global_rank == 0:
        _write_config(folder, config, ds, bb.spec, fit_ds, val_ds, part)

    t0 = time.perf_counter()
    result = train(fabric, bb, fit_ds, val_ds, config, folder, resume=resume, progress=progress)
    timing["train"] = time.perf_counter() - t0
    scored = _transfer_model(bb, result, config)
    t0 = time.perf_counter()
    model, refit_epochs = scored, None
    if refit and len(part.final) > len(fit_ds):
        model, refit_epochs = _refit(fabric, spec, part.final, result, config, progress)
        timing["refit"] = time.perf_counter() - t0
    model.data_info = {
        **runs.data_info(ds, part, seed),
        "n_train": len(part.final) if refit_epochs else len(fit_ds),
        "n_scored_train": len(fit_ds),
        "n_val": len(val_ds) if val_ds else 0,
    }
    if result.global_rank != 0:  # the other processes of a distributed run leave evaluating and saving to rank 0
        model.report = {"global_rank": result.global_rank}
        return model

    t0 = time.perf_counter()
    metrics = _evaluate(scored, part.train, part.test, ds.tasks, seed, baseline, batch_size, progress)
    timing["evaluate"] = time.perf_counter() - t0
    _report(model, ds, metrics, timing, result, config, folder)
    model.report["finetune"]["schedule"] = _schedule_note(given, config, len(part.train), ds.modality)
    _describe_items(model, part, fit_ds, val_ds, refit_epochs, test_source)
    if folder is not None:
        runs.save_run(model, folder, metrics)
    return model


def _schedule_note(given: FinetuneConfig, config: FinetuneConfig, n_items: int, modality: str) -> str:
    """How long it trained and whether a validation part chose the epoch, and why (given, or sized to the data)."""
    from headstart.finetune.config import MIN_VAL_ITEMS, sized_rule

    epochs = f"{config.total_epochs} epoch" + ("s" if config.total_epochs != 1 else "")
    if given.loop.epochs is None:
        epochs += f" (sized to {n_items} items: at least {sized_rule(modality).min_steps} optimizer steps)"
    if config.loop.val_size:
        val = f"a validation part ({config.loop.val_size:g} of the training items) picked the best epoch"
    elif given.loop.val_size is None:
        val = f"no validation part (it would hold fewer than {MIN_VAL_ITEMS} items): the schedule ran to its end"
    else:
        val = "no validation part (val_size 0): the schedule ran to its end"
    return f"{epochs}; {val}"


def _refit(
    fabric: Any, spec: str, final_ds: Dataset, result: Any, config: FinetuneConfig, progress: bool
) -> tuple[TransferModel, int]:
    """The saved model: trained again from the pretrained weights on every label, for `_refit_epochs` epochs."""
    from headstart.backbones import create_backbone
    from headstart.finetune.loop import train

    epochs = _refit_epochs(result, config)
    again = replace(
        config,
        loop=replace(config.loop, epochs=epochs, val_size=0.0),
        regularisation=replace(config.regularisation, patience=None),
    )
    bb = create_backbone(spec)
    return _transfer_model(bb, train(fabric, bb, final_ds, None, again, None, progress=progress), again), epochs


def _refit_epochs(result: Any, config: FinetuneConfig) -> int:
    """The epochs to retrain for: those up to the best validation epoch (all that ran, without validation);
    for `gradual`, less the head-only epochs it adds by itself."""
    ran = len(result.history)
    best = result.best_epoch if result.best_epoch is not None else ran
    if config.strategy.strategy == "gradual":
        best -= config.strategy.freeze_epochs
    return max(1, int(best))


def _transfer_model(bb: Any, result: Any, config: FinetuneConfig) -> TransferModel:
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
    heads = export_heads(result.net, result.tasks.classes, config)
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


def _report(
    model: TransferModel,
    ds: Dataset,
    metrics: dict[str, Any],
    timing: dict[str, float],
    result: Any,
    config: FinetuneConfig,
    folder: Path | None,
) -> None:
    from headstart.training.logs import METRICS_FILE, TENSORBOARD_DIR

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


def _describe_items(
    model: TransferModel,
    part: Partition,
    fit_ds: Dataset,
    val_ds: Dataset | None,
    refit_epochs: int | None,
    test_source: str | None,
) -> None:
    """The report's plain words: which items scored the model, which trained the saved one."""
    scored_on = f"the separate labelled set {test_source}" if test_source else "a held-out split"
    model.report["accuracy_from"] = (
        f"{scored_on} ({len(part.test)} items), scoring a model fine-tuned on {len(fit_ds)} items"
        + (f" ({len(val_ds)} more chose the epoch)" if val_ds else "")
    )
    model.report["trained_on"] = (
        f"all {model.data_info['n_train']} labelled items given, retrained from the pretrained weights for "
        f"{refit_epochs} epochs"
        if refit_epochs
        else f"the {len(fit_ds)} items the scored model trained on (refit off, or nothing more to learn from)"
    )
    model.report["finetune"]["refit_epochs"] = refit_epochs


def _write_config(
    folder: Path,
    config: FinetuneConfig,
    ds: Dataset,
    backbone: str,
    fit_ds: Dataset,
    val_ds: Dataset | None,
    part: Partition,
) -> Path:
    """`finetune-config.json`: the resolved settings and what the run trains and scores on."""
    from headstart.finetune.data import Tasks

    context = {
        "data": ds.source,
        "backbone": backbone,
        "labels_per_class": part.labels_per_class,
        "test_size": part.test_size,
        "n_train": len(fit_ds),
        "n_val": len(val_ds) if val_ds else 0,
        "n_test": len(part.test) if part.test is not None else 0,
        "tasks": Tasks.from_dataset(fit_ds).classes,
    }
    folder.mkdir(parents=True, exist_ok=True)
    with atomic_file(folder / CONFIG_FILE) as f:
        json.dump({**config.to_json(), "run": context}, f, indent=2, default=str)
    return folder / CONFIG_FILE


def kept_epoch_label(history: list[dict[str, Any]], epoch: int) -> str:
    """The learning curve's words for the epoch whose weights were kept: chosen by validation, or simply the last."""
    if any("val_loss" in r for r in history):
        return f"best epoch ({epoch})"
    return f"kept: the last epoch ({epoch}), no validation"


def learning_curve_png(history: list[dict[str, Any]], path: Path, title: str, best_epoch: int | None) -> Path:
    """Training and validation loss (left axis) and validation accuracy (right axis) per epoch."""
    from headstart.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["train_loss"] for r in history], marker="o", label="train loss")
    handles_from = [ax]
    if any("val_loss" in r for r in history):
        ax.plot(epochs, [r.get("val_loss") for r in history], marker="o", label="validation loss")
        acc = ax.twinx()
        acc.plot(
            epochs, [r.get("val_accuracy") for r in history], marker="s", color="tab:green", label="validation accuracy"
        )
        acc.set_ylabel("validation accuracy")
        acc.set_ylim(0, 1.02)
        handles_from.append(acc)
    if best_epoch is not None:
        ax.axvline(best_epoch, color="grey", linestyle=":", label=kept_epoch_label(history, best_epoch))
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    # one legend for both axes, below the plot, where it hides no point
    handles = [h for a in handles_from for h in a.get_legend_handles_labels()[0]]
    labels = [h.get_label() for h in handles]
    ax.legend(
        handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=len(handles), fontsize=8, frameon=False
    )
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


# --- lr-find ---------------------------------------------------------------------------------------------------


def lr_find(
    data: Any,
    *,
    backbone: str | None = None,
    head: str = "linear",
    strategy: str = "finetune",
    batch_size: int = 32,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_it: int = 100,
    seed: int = 0,
    labels_per_class: int | None = None,
    test_size: float = 0.25,
    out: str | Path | None = None,
    progress: bool = True,
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    strict: bool = False,
    **options: Any,
) -> dict[str, Any]:
    """Sweep the learning rate on the training split of the run `headstart.runs.open_run` opens (any source,
    in-memory items included); `out` (a .png path) gets the loss-vs-LR plot.

    Returns the LRs and smoothed losses tried, `suggestion` (steepest descent) and `min_lr_over_10`. Each group's
    rate keeps its ratio to `lr` as the strategy sets it (the backbone below the head, layer decay, ...).
    """
    from headstart.backbones import create_backbone
    from headstart.backbones.registry import check_modality
    from headstart.finetune.lr_range import lr_range_test
    from headstart.training.fabric import make_fabric

    config = FinetuneConfig.from_options(head=head, strategy=strategy, batch_size=batch_size, seed=seed, **options)
    fabric = make_fabric(config.distributed)
    opened = runs.open_run(
        data, backbone=backbone, test_size=test_size, seed=seed, labels_per_class=labels_per_class, refit=False,
        text_column=text_column, label_columns=label_columns, strict=strict,
    )  # fmt: skip
    bb = create_backbone(opened.backbones[0])
    check_modality(bb, opened.data)
    sweep = dict(start_lr=start_lr, end_lr=end_lr, num_it=num_it, progress=progress)
    result = lr_range_test(fabric, bb, opened.part.train, config, **sweep)
    result.update(backbone=bb.spec, strategy=strategy)
    if out is not None:
        title = f"lr-find: {opened.data.source} with {bb.spec} ({strategy})"
        result["png"] = str(lr_plot(result["lrs"], result["losses"], result, Path(out), title))
    return result


def lr_plot(lrs: list[float], losses: list[float], result: dict[str, Any], path: Path, title: str) -> Path:
    from headstart.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(lrs, losses)
    ax.set_xscale("log")
    if result.get("suggestion"):
        i = lrs.index(result["suggestion"])
        ax.plot([lrs[i]], [losses[i]], "o", color="red", label=f"suggested lr {lrs[i]:.2e}")
        ax.legend()
    ax.set_xlabel("learning rate")
    ax.set_ylabel("loss (smoothed)")
    ax.grid(alpha=0.3)
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
