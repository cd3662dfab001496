"""The Python API: the three steps of transfer learning (extract, fit a head, predict), plus evaluation and saving.

import headstart as hs
model = hs.fit("samples:bbc-news", backbone="st:all-MiniLM-L6-v2", labels_per_class=16)
model.predict(["Shares fell sharply on Monday"])
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from headstart.backbones.registry import DEFAULT_BACKBONES, check_modality, default_backbone
from headstart.model import TransferModel
from headstart.runs import build_report as _report
from headstart.runs import evaluate_model as _evaluate
from headstart.runs import load_dataset, save_run
from headstart.runs import write_outputs as _write_outputs

__all__ = [
    "DEFAULT_BACKBONES",
    "default_backbone",
    "diagnose",
    "embed",
    "embed_parts",
    "evaluate",
    "fit",
    "list_backbones",
    "load",
    "load_dataset",
    "predict",
    "predict_rows",
    "rank",
    "save_run",
]


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
    engine: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
) -> np.ndarray:
    """Step 1, `f_feat(x) = f_enc(x)`: features of every item, through the on-disk cache.

    Row i belongs to the i-th usable item; items that could not be used (listed in the dataset's `issues`) have no
    row. With `out` (a .npy file), `ids_path(out)` is written beside it: a CSV of `row,id` naming each row's item (its
    file, or its table and row), so the features can be joined back to the user's data. For outputs larger than
    memory, or on object storage, see `embed_parts`.

    `engine="ray"` runs the backbone on a Ray cluster (`RAY_ADDRESS`, else a local one): `workers` actors holding
    one backbone each, `gpus_per_worker` GPUs each; the rows are the same, in the same order."""
    from headstart.features import extract_features

    ds, bb = _embedding(data, backbone, text_column, strict)
    with _engine(engine, workers, gpus_per_worker) as runner:
        x = extract_features(bb, ds, batch_size=batch_size, cache=cache, progress=progress, out=out, engine=runner)
    if out is not None:
        _write_ids(ids_path(out), ds.where)
    return x


def embed_parts(
    data: Any,
    *,
    out: str | Path,
    backbone: str | None = None,
    rows_per_part: int | None = None,
    batch_size: int = 32,
    cache: bool = True,
    progress: bool = True,
    text_column: str | None = None,
    strict: bool = False,
    engine: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
) -> dict[str, Any]:
    """`embed` into Parquet parts (`part-00000-of-00008.parquet`: row, id, vector) in the folder or fsspec URL `out`
    (`s3://bucket/prefix`), one part at a time, so memory stays flat; parts finished by an earlier run on the same
    items and backbone are kept. Returns what was done: `rows`, `dim`, the part names `written` and `kept`.
    Read them back with `headstart.features.parts.read_parts(out)` (or any Parquet reader)."""
    from headstart.features import extract_features
    from headstart.features.parts import ROWS_PER_PART, write_parts

    ds, bb = _embedding(data, backbone, text_column, strict)
    settings = {"batch_size": batch_size, "cache": cache, "progress": progress}
    with _engine(engine, workers, gpus_per_worker) as runner:

        def features_for(rows: slice) -> np.ndarray:
            return extract_features(bb, ds.subset(range(rows.start, rows.stop)), engine=runner, **settings)

        done = write_parts(
            out, ds.where, ds.content_hashes(), bb.cache_key, features_for, rows_per_part=rows_per_part or ROWS_PER_PART
        )
    return {"out": str(out), "rows": len(ds), "dim": bb.embed_dim, **done}


def _embedding(data: Any, backbone: str | None, text_column: str | None, strict: bool) -> tuple[Any, Any]:
    """The dataset to embed and the backbone for it (the modality's default when none is named)."""
    from headstart.backbones import create_backbone

    ds = load_dataset(data, text_column=text_column, strict=strict)
    bb = create_backbone(backbone or default_backbone(ds.modality))
    check_modality(bb, ds)
    return ds, bb


def _engine(engine: str | None, workers: int | None, gpus_per_worker: float | None) -> Any:
    """A context running the feature extraction inside it on `engine` (see `headstart.features.engine`)."""
    from headstart.features.engine import engine_from, using

    return using(engine_from(engine, workers, gpus_per_worker))


def ids_path(out: str | Path) -> Path:
    """Where `embed(..., out=F.npy)` writes the item of each row: `F.ids.csv`."""
    return Path(out).with_suffix(".ids.csv")


def _write_ids(path: Path, where: list[str]) -> None:
    import csv

    from headstart.paths import atomic_file

    with atomic_file(path, "w") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["row", "id"])
        writer.writerows(enumerate(where))


def fit(
    data: Any,
    *,
    backbone: str | list[str] | None = None,
    head: str | None = None,
    out: str | Path | None = None,
    test: Any = None,
    test_size: float = 0.25,
    refit: bool = True,
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
    strategy: str | None = None,
    time_budget: float | None = None,
    task: str = "classify",
    engine: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    **options: Any,
) -> TransferModel:
    """Steps 1 and 2: features from a pretrained backbone, one head per label column, scored honestly, saved.

    Where the quoted accuracy comes from: a held-out split of `test_size` (default), the separate labelled set
    `test`, or with `test_size=0` cross-validation. The saved model then learns from every labelled item it was
    given (`refit=False` keeps the model that was scored); `labels_per_class` simulates a small labelled set.
    The returned model carries `report` (metrics, the baseline on the same items, timing, which items trained it);
    with `out`, the model is saved there as a bundle with report.json, report.md and confusion-matrix PNGs.

    `strategy`: "auto" (candidate recipes compared by cross-validation, the simple baseline among them, within
    `time_budget` seconds for the costly ones; several backbones when `backbone` is a list; see
    `headstart.autofit`), "probe" (frozen features, tuned head), "setfit" (contrastive tuning of a text encoder,
    then the probe), or a fine-tuning strategy (finetune, gradual, layer-decay, lora) that trains the backbone too:
    see `headstart.finetuning.finetune` for `options` (epochs, lr, ...). Without `strategy`: "auto", or "probe"
    where `head` / `head_params` name one head's recipe (`default_strategy`), or where a class has a single
    training item, too few to compare recipes on (the report says so).

    `task="seq2seq"` or `"transcribe"`: a sequence model fine-tuned on (source, target) pairs instead, returned as a
    `SequenceModel` (strategy full, decoder or lora); see `headstart.sequencing.fit_sequence` for `options`.

    `engine="ray"` (with `workers`, `gpus_per_worker`) extracts the probe's features on Ray, as `embed` does.
    """
    from headstart.runs import open_run

    if task != "classify":
        classify_only = {"head": head is not None, "refit": not refit, "labels_per_class": labels_per_class,
                         "text_column": text_column, "label_columns": label_columns, "class_weight": class_weight,
                         "head_params": head_params, "time_budget": time_budget}  # fmt: skip
        return _fit_sequence(data, task, [k for k, v in classify_only.items() if v], backbone=backbone, out=out,
                             test=test, test_size=test_size, seed=seed, strict=strict, batch_size=batch_size,
                             baseline=baseline, progress=progress, strategy=strategy, **options)  # fmt: skip

    chosen_by_default = strategy is None
    strategy = default_strategy(head, head_params) if strategy is None else strategy
    if strategy != "auto" and not (isinstance(backbone, str) or backbone is None) and len(backbone) > 1:
        raise TypeError("several backbones need strategy='auto', which compares them")
    if strategy != "auto" and time_budget is not None:
        raise TypeError(f"time_budget applies to strategy='auto', not {strategy!r}")
    if strategy == "auto" and (head is not None or head_params):
        raise TypeError("head and head_params name one recipe; strategy='auto' compares heads and settings itself")
    run = open_run(
        data,
        backbone=backbone,
        test=test,
        test_size=test_size,
        seed=seed,
        labels_per_class=labels_per_class,
        refit=refit,
        text_column=text_column,
        label_columns=label_columns,
        strict=strict,
    )
    note = None
    from headstart.autofit import comparable

    if chosen_by_default and strategy == "auto" and not comparable(run.part.train):
        strategy, note = "probe", "the probe: a class has a single training item, too few for auto to compare recipes"
    recipe = {
        "head": head or "linear",
        "head_params": head_params,
        "class_weight": class_weight,
        "common": {"seed": seed, "batch_size": batch_size, "baseline": baseline, "progress": progress},
    }
    if strategy not in ("auto", "probe", "setfit"):  # fine-tuning writes its own run folder as it trains
        return _fine_tune(run, strategy, recipe, out=out, refit=refit, options=options)
    with _engine(engine, workers, gpus_per_worker):
        if strategy == "auto":
            model = _auto(run, recipe, time_budget, options)
        else:
            model = _probe(run, strategy, recipe, options)
    model.report.setdefault("timing_s", {})["load"] = run.load_s
    if note is not None:
        model.report["strategy_note"] = note
    if out is not None:
        if "leaderboard" in model.report:
            from headstart.autofit import leaderboard_png

            Path(out).mkdir(parents=True, exist_ok=True)
            leaderboard_png(model.report, Path(out) / "leaderboard.png")
            model.report["leaderboard_png"] = "leaderboard.png"
        save_run(model, out, model.report["tasks"])
    return model


def default_strategy(head: str | None, head_params: dict[str, Any] | None) -> str:
    """The strategy of a `fit` that names none: "auto", which compares recipes (the baseline among them), unless a
    head or its settings were given: they name one recipe, the probe's."""
    return "probe" if head is not None or head_params else "auto"


def _fit_sequence(data: Any, task: str, refused: list[str], *, strategy: str, **options: Any) -> Any:
    """`fit(task="seq2seq" | "transcribe")`: the sequence recipe; options that only classify are refused."""
    from headstart.sequencing import fit_sequence

    if refused:
        raise TypeError(f"{', '.join(refused)}: classification options, not for task={task!r}")
    return fit_sequence(data, task=task, strategy="full" if strategy in (None, "probe") else strategy, **options)


def _auto(run: Any, recipe: dict[str, Any], time_budget: float | None, options: dict[str, Any]) -> TransferModel:
    from headstart.autofit import fit_auto

    if options and time_budget is None:
        raise TypeError(
            f"fit() options {', '.join(sorted(options))} only reach strategy 'auto' through its fine-tuning "
            "candidates, which run with a time_budget; give one, or choose a fine-tuning strategy"
        )
    return fit_auto(
        run.data,
        run.part,
        backbones=run.backbones,
        head_params=recipe["head_params"],
        class_weight=recipe["class_weight"],
        time_budget=time_budget,
        test_source=run.test_source,
        finetune_options=options,
        **recipe["common"],
    )


def _probe(run: Any, strategy: str, recipe: dict[str, Any], options: dict[str, Any]) -> TransferModel:
    from headstart.probe import fit_probe

    unknown = sorted(set(options) - ({"pairs_per_item", "epochs", "lr", "loss"} if strategy == "setfit" else set()))
    if unknown:
        raise TypeError(f"fit() options {', '.join(unknown)} do not apply to strategy {strategy!r}")
    return fit_probe(
        run.data,
        run.part,
        backbone=run.backbones[0],
        head=recipe["head"],
        head_params=recipe["head_params"],
        class_weight=recipe["class_weight"],
        adapt="setfit" if strategy == "setfit" else None,
        adapt_options=options,
        test_source=run.test_source,
        **recipe["common"],
    )


def _fine_tune(
    run: Any, strategy: str, recipe: dict[str, Any], *, out: Any, refit: bool, options: dict[str, Any]
) -> TransferModel:
    from headstart.finetuning import finetune

    return finetune(
        run.data,
        part=run.part,
        refit=refit,
        labels_per_class=run.part.labels_per_class,  # recorded in the run's config (the partition applied it)
        test_size=run.part.test_size,
        backbone=run.backbones[0],
        head=recipe["head"],
        strategy=strategy,
        class_weight=recipe["class_weight"],
        out=out,
        test_source=run.test_source,
        **recipe["common"],
        **(recipe["head_params"] or {}),
        **options,
    )


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
    noise_colour: str = "white",
) -> dict[str, Any]:
    """Metrics of a fitted model on every labelled item of `data` (no split): a report dict, saved when `out` is set.
    Audio only: `noise_snr` adds noise at that SNR (dB, seeded per item) to every clip, a robustness check; its
    `noise_colour` is white, pink or brown (power falling 0, 3 or 6 dB per octave) or babble (three other clips of
    `data` summed: competing speech)."""
    from headstart.errors import DataError

    model = _loaded(model)
    if not isinstance(model, TransferModel):  # a sequence model: its own metrics (chrF, ROUGE, WER...)
        from headstart.sequencing import evaluate_sequence

        return evaluate_sequence(model, data, out=out, strict=strict)
    ds = load_dataset(
        data, modality=model.modality, text_column=text_column, label_columns=label_columns, strict=strict
    )
    if noise_snr is not None:
        from headstart.data.audio import with_noise

        rate = getattr(getattr(model.backbone, "audio_preprocessing", None), "sample_rate", 16_000)
        ds = with_noise(ds, noise_snr, sample_rate=rate, colour=noise_colour)
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


def predict(model: TransferModel | str | Path, inputs: Any, *, task: str | None = None) -> list[str]:
    """Step 3, `ŷ = f_clf(f_feat(x))`: the label of each input for `task` (the first by default), as
    `model.predict` gives; `predict_rows` adds probabilities, the top labels and every task."""
    model = _loaded(model)
    if not isinstance(model, TransferModel):  # a sequence model: the generated text of each input
        return model.predict(inputs)
    return model.predict(inputs, task=task)


def _loaded(model: Any) -> Any:
    """`model` itself when it is a fitted model (classifier or sequence model), else the model saved there."""
    from headstart.sequencing import SequenceModel

    return model if isinstance(model, (TransferModel, SequenceModel)) else load(model)


def predict_rows(
    model: TransferModel | str | Path,
    inputs: Any,
    *,
    top_k: int = 1,
    engine: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
) -> list[dict[str, Any]]:
    """One dict per input for every task: its label, probability and, with `top_k` > 1, the best `top_k` labels
    (see `TransferModel.predict_rows`). `engine="ray"`: the backbone runs on Ray, as in `embed`."""
    model = load(model) if not isinstance(model, TransferModel) else model
    with _engine(engine, workers, gpus_per_worker):
        return model.predict_rows(inputs, top_k=top_k)


def load(path: str | Path, *, trust_local_paths: bool = False) -> TransferModel:
    """A model saved by `fit(..., out=...)` or `model.save(...)`, checked as a folder from anyone would be: manifest
    schema, weight hashes, no pickle, no path out of the folder unless `trust_local_paths`. A sequence model's
    folder gives a `headstart.sequencing.SequenceModel`."""
    from headstart.model import load_model
    from headstart.sequencing import SequenceModel, is_sequence_bundle

    if is_sequence_bundle(path):
        return SequenceModel.load(path)  # type: ignore[return-value]

    return load_model(path, trust_local_paths=trust_local_paths)


def list_backbones() -> list[dict[str, Any]]:
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
    engine: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    **options: Any,
) -> Any:
    """Rank candidate backbones for `data` by transferability scores, before fitting anything; returns a Ranking
    (`.results` best first, `.recommended`). `engine="ray"`: features extracted on Ray, as in `embed`. Other
    `options`: see `headstart.select.ranking.rank`."""
    from headstart.select.ranking import rank as run

    ds = load_dataset(data, text_column=text_column, label_columns=label_columns, strict=strict)
    with _engine(engine, workers, gpus_per_worker):
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
    engine: str | None = None,
    workers: int | None = None,
    gpus_per_worker: float | None = None,
    **options: Any,
) -> Any:
    """Data diagnostics on one backbone's embeddings: balance, duplicates and leakage, suspect labels, outliers, and
    a domain-shift test against `target`; returns a Diagnosis. `engine="ray"`: features extracted on Ray, as in
    `embed`. Other `options`: see `headstart.select.diagnose`."""
    from headstart.select.diagnose import diagnose as run

    ds = load_dataset(data, text_column=text_column, label_columns=label_columns, strict=strict)
    other = None if target is None else load_dataset(target, modality=ds.modality, text_column=text_column)
    with _engine(engine, workers, gpus_per_worker):
        return run(ds, target=other, backbone=backbone or default_backbone(ds.modality), out=out, **options)
