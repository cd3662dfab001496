"""`fit`, `predict`, `evaluate`, `embed`: the three steps of transfer learning and the scoring of a saved model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from headstart.cli import options as o
from headstart.cli.output import console, emit, err, metrics_table, show_skipped, skipped

FINETUNE_PANEL = "Fine-tuning (--strategy finetune, gradual, layer-decay, lora; auto passes them on)"
SETFIT_OPTIONS = {"epochs", "lr", "pairs_per_item", "loss"}  # what --strategy setfit takes (pairs, loss: --set)


def fit(
    ctx: typer.Context,
    data: str = typer.Argument(..., help="samples:NAME, a folder (one sub-folder per class) or a CSV/JSONL/Parquet"),
    backbone: list[str] = typer.Option(
        None, "--backbone", "-b", help="e.g. st:all-MiniLM-L6-v2, timm:resnet18; repeat it for --strategy auto"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="folder for the saved model and its report"),
    strategy: o.Strategy = typer.Option(
        None,
        "--strategy",
        help="auto (the default; probe when --head is given): compare recipes by CV, the baseline among them; probe: "
        "frozen backbone, cached features, one tuned head; setfit: contrastive text tuning; the others fine-tune "
        "the backbone",
        show_default=False,
    ),
    head: o.HeadKind = typer.Option(
        None, "--head", help="the probe's head: linear (softmax) or mlp (Dense, relu), tuned by CV [default: linear]"
    ),
    labels_per_class: int = typer.Option(None, "--labels-per-class", help="keep only N labelled items per class"),
    seed: int = typer.Option(0, "--seed"),
    test: str = typer.Option(None, "--test", help="a separate labelled set to score on, instead of a split"),
    test_size: float = typer.Option(
        0.25, "--test-size", help="held-out fraction to score on; 0: train on all, cross-validated estimate"
    ),
    refit: bool = typer.Option(
        True, "--refit/--no-refit", help="after scoring, train the saved model on every labelled item"
    ),
    time_budget: float = typer.Option(None, "--time-budget", help="--strategy auto: seconds to spend on candidates"),
    class_weight: bool = typer.Option(False, "--balanced", help="weight classes inversely to their frequency"),
    baseline: bool = typer.Option(True, "--baseline/--no-baseline", help="also fit the simple baseline"),
    batch_size: int = typer.Option(32, "--batch-size"),
    text_column: str = o.TEXT_COLUMN,
    label_column: list[str] = o.LABEL_COLUMNS,
    strict: bool = o.STRICT,
    fmt: o.Format = o.FORMAT,
    epochs: int = typer.Option(
        None,
        "--epochs",
        help="default: sized to the data: at least 300 optimizer steps in 5 to 100 epochs for images, 100 steps in "
        "5 to 50 epochs for text and audio",
        rich_help_panel=FINETUNE_PANEL,
    ),
    lr: float = typer.Option(
        None, "--lr", help="head learning rate, top of the schedule (default 2e-3)", rich_help_panel=FINETUNE_PANEL
    ),
    augment: o.Augment = typer.Option(
        None, "--augment", help="training augmentation (default light)", rich_help_panel=FINETUNE_PANEL
    ),
    weight_decay: float = typer.Option(None, "--weight-decay", rich_help_panel=FINETUNE_PANEL),
    dropout: float = typer.Option(
        None, "--dropout", help="before a linear head; inside an MLP head", rich_help_panel=FINETUNE_PANEL
    ),
    label_smoothing: float = typer.Option(None, "--label-smoothing", rich_help_panel=FINETUNE_PANEL),
    l2sp: float = typer.Option(
        None, "--l2sp", help="L2-SP: pull the backbone toward its pretrained weights", rich_help_panel=FINETUNE_PANEL
    ),
    patience: int = typer.Option(
        None, "--patience", help="stop after N epochs without a better val score", rich_help_panel=FINETUNE_PANEL
    ),
    val_size: float = typer.Option(
        None,
        "--val-size",
        help="fraction of training items held out to pick the epoch (default 0.15 where that is 100 items, else 0)",
        rich_help_panel=FINETUNE_PANEL,
    ),
    accumulate: int = typer.Option(
        None,
        "--accumulate",
        help="optimizer step every N batches (effective batch: batch size x N)",
        rich_help_panel=FINETUNE_PANEL,
    ),
    resume: bool = typer.Option(
        False, "--resume", help="continue an interrupted run in --out", rich_help_panel=FINETUNE_PANEL
    ),
    settings: list[str] = typer.Option(
        None, "--set", help="any other fine-tuning option as KEY=VALUE (JSON value)", rich_help_panel=FINETUNE_PANEL
    ),
    devices: str = o.DEVICES,
    accelerator: str = o.ACCELERATOR,
    precision: str = o.PRECISION,
    num_nodes: int = o.NUM_NODES,
    distributed_strategy: str = o.DISTRIBUTED_STRATEGY,
    task: o.Task = typer.Option(
        "classify", "--task", help="classify; transcribe (audio + transcript) or seq2seq (source + target text)"
    ),
    max_train: int = typer.Option(None, "--max-train", help="keep N training pairs", rich_help_panel=o.SEQUENCE_PANEL),
    max_test: int = typer.Option(
        None, "--max-test", help="score on N of the held-out pairs (a quick look)", rich_help_panel=o.SEQUENCE_PANEL
    ),
    source_column: str = o.SOURCE_COLUMN,
    target_column: str = o.TARGET_COLUMN,
    num_beams: int = o.NUM_BEAMS,
    max_length: int = o.MAX_LENGTH,
    engine: o.EngineName = o.ENGINE,
    workers: int = o.WORKERS,
    gpus_per_worker: float = o.GPUS_PER_WORKER,
) -> None:
    """Extract features with a pretrained backbone, fit a head, evaluate on a held-out split, save the model.

    By default (--strategy auto) the simple baseline, tuned heads on the backbone's features and the two joined are
    compared by cross-validation, and the best is refit on every label; --strategy probe (or --head) fits one head.
    With --strategy finetune / gradual / layer-decay / lora, the backbone trains with the head (see lr-find too).
    With --task transcribe or seq2seq, a pretrained encoder-decoder is fine-tuned on pairs (--strategy full,
    decoder or lora) and scored beside its baselines.
    """
    from headstart.cli import sequence

    if task.value != "classify":
        return sequence.fit(ctx, task.value)
    sequence.refuse_sequence_options(ctx, "classification")
    scale = o.scale(ctx, engine, workers, gpus_per_worker)
    from headstart.api import default_strategy

    name = strategy.value if strategy is not None else default_strategy(head and head.value, None)
    if name not in ("probe", "auto"):
        o.refuse(o.given(ctx, "engine", "workers", "gpus_per_worker"), "apply to --strategy probe and auto")
    tuning = ("epochs", "lr", "augment", "weight_decay", "dropout", "label_smoothing", "l2sp", "patience")
    tuning += ("val_size", "accumulate", "resume", *o.DISTRIBUTED)
    extra = o.parse_settings(settings)
    if name in ("probe", "setfit"):
        allowed = SETFIT_OPTIONS if name == "setfit" else set()
        o.refuse(
            [n for n in o.given(ctx, *tuning) if n not in allowed] + sorted(k for k in extra if k not in allowed),
            f"only apply to fine-tuning; choose --strategy {', '.join(o.FINETUNING[:-1])} or {o.FINETUNING[-1]}",
        )
    o.refuse(o.given(ctx, "resume") if name == "auto" else [], "continues one fine-tuning run, not auto")
    if name == "auto" and time_budget is None:
        o.refuse(
            [n for n in o.given(ctx, *tuning) if n != "resume"] + sorted(extra),
            "reach --strategy auto (the default) only through its fine-tuning candidates, which run with "
            f"--time-budget; give one, or choose --strategy {', '.join(o.FINETUNING[:-1])} or {o.FINETUNING[-1]}",
        )
    o.refuse(o.given(ctx, "time_budget") if name != "auto" else [], "only applies to --strategy auto")
    o.refuse(o.given(ctx, "head") if name == "auto" else [], "names one head; --strategy auto compares heads itself")
    if backbone and len(backbone) > 1 and name != "auto":
        raise o.NotApplicable("several --backbone need --strategy auto, which compares them")
    o.refuse(o.given(ctx, "test_size") if test else [], "does not apply with --test, which is scored instead")
    if test_size < 0 or test_size >= 1:
        raise typer.BadParameter(f"{test_size} is not in [0, 1)", param_hint="--test-size")

    from headstart import api

    values = {"augment": augment.value if augment else None, "resume": resume}
    chosen = {n: values.get(n, ctx.params[n]) for n in o.given(ctx, *tuning) if n not in o.DISTRIBUTED}
    if o.given(ctx, *o.DISTRIBUTED):
        chosen.update(o.distributed(devices, accelerator, precision, num_nodes, distributed_strategy))
    named = set(o.given(ctx, *tuning))
    o.refuse([k for k in extra if k in named], "given twice: on its own and in --set")
    options = {**chosen, **extra}  # --set accelerator=cpu with --devices 2: the accelerator --set names
    loader = o.DataOptions(text_column, tuple(label_column or ()), strict)
    ds = loader.load(data)
    test_ds = loader.load(test, modality=ds.modality) if test else None
    show_skipped([*ds.issues, *(test_ds.issues if test_ds is not None else [])], fmt)
    specs = backbone or [None]
    model = api.fit(
        ds,
        backbone=specs[0] if len(specs) == 1 else specs,
        head=head.value if head is not None else None,
        out=out,
        labels_per_class=labels_per_class,
        seed=seed,
        test=test_ds,
        test_size=test_size,
        refit=refit,
        time_budget=time_budget,
        class_weight="balanced" if class_weight else None,
        baseline=baseline,
        batch_size=batch_size,
        progress=fmt.value == "table",
        strategy=strategy.value if strategy is not None else None,
        **scale,
        **options,
    )
    if model.report.get("global_rank", 0) != 0:  # another process of a distributed run: rank 0 reports
        return None
    if fmt.value == "json":
        return emit({**model.report, "out": str(out)})
    if "leaderboard" in model.report:
        console.print(leaderboard_table(model.report))
    console.print(metrics_table(model.report))
    if note := model.report.get("strategy_note"):
        console.print(f"recipe: {escape(str(note))}", highlight=False)
    for key, words in (("accuracy_from", "accuracy measured on"), ("trained_on", "the saved model learned from")):
        if key in model.report:
            console.print(f"{words} {escape(str(model.report[key]))}", highlight=False)
    if schedule := model.report.get("finetune", {}).get("schedule"):
        console.print(f"trained for {escape(schedule)}", highlight=False)
    for line in baseline_warnings(model.report):
        err.print(f"[yellow]{escape(line)}[/yellow]", highlight=False)
    console.print(f"saved model and report to [bold]{out}[/bold]")


def predict(
    ctx: typer.Context,
    model_dir: Path = typer.Argument(..., help="a folder saved by `headstart fit`"),
    inputs: list[str] = typer.Argument(..., help="image files, text files, literal texts, folders or tables"),
    top_k: int = typer.Option(1, "--top-k"),
    text_column: str = o.TEXT_COLUMN,
    strict: bool = o.STRICT,
    fmt: o.Format = o.FORMAT,
    runtime: o.Runtime = o.RUNTIME,
    source_column: str = o.SOURCE_COLUMN,
    num_beams: int = o.NUM_BEAMS,
    max_length: int = o.MAX_LENGTH,
    engine: o.EngineName = o.ENGINE,
    workers: int = o.WORKERS,
    gpus_per_worker: float = o.GPUS_PER_WORKER,
) -> None:
    """Predict labels for new inputs with a saved model (or, with --runtime onnx, an exported one); a sequence
    model generates text (a transcript, a translation, a headline) for each input."""
    from headstart import api
    from headstart.cli import sequence
    from headstart.model import as_dataset

    if sequence.is_bundle(model_dir):
        return sequence.predict(ctx, model_dir, inputs)
    sequence.refuse_sequence_options(ctx, "a classifier")

    if top_k < 1:
        raise typer.BadParameter(f"{top_k} is not a positive number", param_hint="--top-k")
    scale = o.scale(ctx, engine, workers, gpus_per_worker)
    if runtime.value == "onnx":
        o.refuse(o.given(ctx, "engine", "workers", "gpus_per_worker"), "apply to --runtime torch")
    model = api.load(model_dir) if runtime.value == "torch" else _exported(model_dir)
    if len(inputs) == 1 and _is_source(inputs[0]):
        ds = o.DataOptions(text_column, (), strict).load(inputs[0], modality=model.modality, labels=False)
    else:
        o.refuse(["text_column"] if text_column else [], "applies to a table given as the one input")
        ds = as_dataset(inputs, model.modality)
        if strict:
            from headstart.data.validate import finish

            finish(ds, strict=True)
    show_skipped(ds.issues, "table")  # on stderr in both formats: the JSON payload is a list of rows
    if runtime.value == "onnx":
        rows = model.predict_rows(ds.items, top_k=top_k, where=ds.where)
    else:
        rows = api.predict_rows(model, ds, top_k=top_k, **scale)
    if fmt.value == "json":
        return emit(rows)
    table = Table(title=f"predictions of {model_dir}")
    table.add_column("input", overflow="ellipsis", max_width=60)
    for task in model.tasks:
        table.add_column(task)
        table.add_column("probability", justify="right")
    for row in rows:
        cells = [str(row["input"])]
        for task in model.tasks:
            cells += [row[task], f"{row[f'{task}_probability']:.3f}"]
        table.add_row(*cells)
    console.print(table)


def evaluate(
    ctx: typer.Context,
    model_dir: Path = typer.Argument(..., help="a folder saved by `headstart fit`"),
    data: str = typer.Argument(..., help="labelled data to evaluate on"),
    out: Path = typer.Option(None, "--out", "-o", help="folder for report.json, report.md and the confusion PNG"),
    noise_snr: float = typer.Option(None, "--noise-snr", help="audio: add noise at this SNR (dB) to every clip"),
    noise_colour: o.NoiseColour = typer.Option(
        "white",
        "--noise-colour",
        help="with --noise-snr: white, pink (-3 dB/octave), brown (-6 dB/octave) or babble (3 other clips' speech)",
    ),
    text_column: str = o.TEXT_COLUMN,
    label_column: list[str] = o.LABEL_COLUMNS,
    strict: bool = o.STRICT,
    fmt: o.Format = o.FORMAT,
    runtime: o.Runtime = o.RUNTIME,
    source_column: str = o.SOURCE_COLUMN,
    target_column: str = o.TARGET_COLUMN,
    num_beams: int = o.NUM_BEAMS,
    max_length: int = o.MAX_LENGTH,
) -> None:
    """Evaluate a saved model on labelled data: accuracy, macro-F1, per-class precision/recall, confusion matrix;
    a sequence model: chrF, BLEU and ROUGE (seq2seq) or WER and CER (transcribe), beside its baseline."""
    from headstart import api
    from headstart.cli import sequence

    if sequence.is_bundle(model_dir):
        return sequence.evaluate(ctx, model_dir, data)
    sequence.refuse_sequence_options(ctx, "a classifier")

    if noise_snr is None and noise_colour.value != "white":
        raise typer.BadParameter("needs --noise-snr, the level of the noise", param_hint="--noise-colour")
    model = api.load(model_dir) if runtime.value == "torch" else _exported(model_dir)
    ds = o.DataOptions(text_column, tuple(label_column or ()), strict).load(data, modality=model.modality)
    show_skipped(ds.issues, fmt)
    if runtime.value == "onnx":
        o.refuse(["noise_snr"] if noise_snr is not None else [], "applies to --runtime torch")
        report = _evaluate_exported(model, ds, out)
    else:
        report = api.evaluate(model, ds, out=out, progress=fmt.value == "table", noise_snr=noise_snr,
                              noise_colour=noise_colour.value)  # fmt: skip
    if fmt.value == "json":
        return emit(report)
    console.print(metrics_table(report))
    for task, m in report["tasks"].items():
        table = Table(title=f"per class: {task}")
        for col in ("class", "precision", "recall", "F1", "support"):
            table.add_column(col, justify="left" if col == "class" else "right")
        for label, c in m["per_class"].items():
            table.add_row(label, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
        console.print(table)
    if out:
        console.print(f"report written to [bold]{out}[/bold]")


def embed(
    ctx: typer.Context,
    data: str = typer.Argument(..., help="samples:NAME, a folder or a table"),
    out: str = typer.Option(
        ...,
        "--out",
        "-o",
        help="a .npy file (float32, items x dims), or a folder or URL (s3://bucket/prefix/) for Parquet parts",
    ),
    backbone: str = typer.Option(None, "--backbone", "-b"),
    batch_size: int = typer.Option(32, "--batch-size"),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="read and fill the feature cache ($HEADSTART_CACHE)"),
    rows_per_part: int = typer.Option(None, "--rows-per-part", help="Parquet parts: rows in each (default 100000)"),
    text_column: str = o.TEXT_COLUMN,
    strict: bool = o.STRICT,
    fmt: o.Format = o.FORMAT,
    runtime: o.Runtime = typer.Option(
        "torch", "--runtime", help="onnx: --backbone names an export folder (headstart export), run with onnxruntime"
    ),
    engine: o.EngineName = o.ENGINE,
    workers: int = o.WORKERS,
    gpus_per_worker: float = o.GPUS_PER_WORKER,
) -> None:
    """Extract features (f_feat(x) = f_enc(x)) of every item into a .npy file or Parquet parts, through the cache."""
    from headstart import api

    scale = o.scale(ctx, engine, workers, gpus_per_worker)
    parts = _parts_output(out)
    o.refuse(o.given(ctx, "rows_per_part") if not parts else [], "applies to Parquet parts (--out a folder or URL)")
    if runtime.value == "onnx" and not backbone:
        raise o.NotApplicable("--runtime onnx needs --backbone EXPORT_DIR, the folder `headstart export` wrote")
    if runtime.value == "onnx":
        o.refuse(o.given(ctx, "engine", "workers", "gpus_per_worker", "rows_per_part"), "apply to --runtime torch")
        if parts:
            raise o.NotApplicable("--runtime onnx writes a .npy file; Parquet parts (--out a folder) need torch")
    exported = _exported(Path(backbone)) if runtime.value == "onnx" else None
    modality = exported.modality if exported is not None else None
    ds = o.DataOptions(text_column, (), strict).load(data, modality=modality, labels=False)
    show_skipped(ds.issues, fmt)
    progress = fmt.value == "table"
    if not parts:
        from headstart.storage import local_path

        out = str(local_path(out))  # file:///x.npy as /x.npy
    if parts:
        done = api.embed_parts(ds, out=out, backbone=backbone, rows_per_part=rows_per_part, batch_size=batch_size,
                               cache=cache, progress=progress, **scale)  # fmt: skip
        if fmt.value == "json":
            return emit({**done, "skipped": skipped(ds.issues)})
        written, kept = len(done["written"]), len(done["kept"])
        console.print(f"wrote {done['rows']} x {done['dim']} float32 features with their ids to [bold]{escape(out)}"
                      f"[/bold]: {written} parts written, {kept} kept from an earlier run")  # fmt: skip
        return None
    if exported is not None:
        o.refuse(["cache"] if not cache else [], "applies to --runtime torch")
        x = _embed_exported(exported, ds, Path(out), batch_size)
    else:
        x = api.embed(ds, backbone=backbone, out=out, batch_size=batch_size, cache=cache, progress=progress, **scale)
    ids = api.ids_path(out)
    if fmt.value == "json":
        payload = {"out": str(out), "ids": str(ids), "shape": list(x.shape), "dtype": str(x.dtype)}
        return emit({**payload, "skipped": skipped(ds.issues)})
    console.print(f"wrote {x.shape[0]} x {x.shape[1]} float32 features to [bold]{out}[/bold], the item of each row to "
                  f"[bold]{ids}[/bold]")  # fmt: skip


def _parts_output(out: str) -> bool:
    """Whether `--out` asks for Parquet parts (a URL, a folder, a name without suffix) rather than one .npy file."""
    if out.endswith(".npy"):
        if "://" in out and not out.startswith("file://"):
            raise typer.BadParameter(f"{out}: a .npy output is a local file; give a URL folder for Parquet parts")
        return False
    if "://" in out or out.endswith("/") or Path(out).is_dir() or not Path(out).suffix:
        return True
    raise typer.BadParameter(f"{out}: give a .npy file, or a folder or URL for Parquet parts", param_hint="--out")


def _exported(path: Path) -> Any:
    """An export folder loaded into ONNX Runtime (`--runtime onnx`)."""
    from headstart.runtime import load_export

    return load_export(path)


def _evaluate_exported(model: Any, ds: Any, out: Path | None) -> dict[str, Any]:
    """`evaluate --runtime onnx`: the same metrics, from the exported graph's probabilities."""
    from headstart.errors import DataError
    from headstart.evaluation import classification_metrics
    from headstart.runs import write_outputs

    missing = [t for t in model.tasks if t not in ds.targets]
    if missing:
        raise DataError(f"{ds.source} has no label column {missing[0]!r}, which the model predicts; it has: "
                        f"{', '.join(ds.tasks) or 'no labels'}")  # fmt: skip
    from headstart.runtime import probabilities_output

    outputs = model.run(ds.items)
    metrics = {}
    for task in model.tasks:
        classes = model.classes(task)
        predicted = [classes[i] for i in outputs[probabilities_output(task)].argmax(1)]
        extra = sorted(set(ds.targets[task]) - set(classes))
        metrics[task] = classification_metrics(ds.targets[task], predicted, classes + extra)
    report = {
        "title": f"evaluate (onnx): {ds.source}",
        "backbone": model.card()["backbone"].get("spec"),
        "runtime": "onnx",
        "model": str(model.path),
        "data": ds.source,
        "fingerprint": ds.fingerprint(),
        "tasks": metrics,
        "skipped": [str(i) for i in ds.issues],
    }
    if out is not None:
        write_outputs(Path(out), report, metrics)
    return report


def _embed_exported(model: Any, ds: Any, out: Path, batch_size: int) -> Any:
    """`embed --runtime onnx`: the exported graph's features, written as `api.embed` writes them."""
    import numpy as np

    from headstart import api
    from headstart.paths import atomic_file

    model.batch_size = batch_size
    x = model.embed(ds.items).astype(np.float32)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(out, "wb") as f:
        np.save(f, x)
    api._write_ids(api.ids_path(out), ds.where)
    return x


def leaderboard_table(report: dict[str, Any]) -> Table:
    table = Table(title=f"candidates, by cross-validation on {report['leaderboard_on']}")
    for col in ("", "candidate", "CV accuracy", "± std", "seconds", "note"):
        table.add_column(col, justify="right" if col in ("CV accuracy", "± std", "seconds") else "left")
    for row in report["leaderboard"]:
        acc = "-" if row.get("cv_accuracy") is None else f"{row['cv_accuracy']:.4f}"
        std = "-" if row.get("cv_std") is None else f"{row['cv_std']:.4f}"
        mark = "[bold green]*[/bold green]" if row.get("chosen") else ""
        table.add_row(mark, row["name"], acc, std, f"{row['seconds']:.1f}", escape(row.get("note", "")))
    return table


def baseline_warnings(report: dict[str, Any]) -> list[str]:
    """One line per task whose simple baseline is clearly more accurate than the model on the same test split
    (by more than a point and more than twice the standard error of an accuracy over that many items)."""
    lines = []
    for task, m in report["tasks"].items():
        b = m.get("baseline")
        if not b or not m.get("n"):
            continue
        gap = b["accuracy"] - m["accuracy"]
        noise = 2 * (max(m["accuracy"] * (1 - m["accuracy"]), 0.0025) / m["n"]) ** 0.5
        if gap > max(0.01, noise):
            where = f" for {task}" if len(report["tasks"]) > 1 else ""
            strategy = report.get("strategy", "probe")
            advice = "another --strategy or more epochs" if strategy != "probe" else "fine-tuning (--strategy finetune)"
            if strategy != "auto":  # auto compared the baseline, and the backbone's features joined with it, already
                advice = (
                    f"--strategy auto, fit's default (it compares the baseline itself, and the backbone's features "
                    f"joined with the baseline's, with this recipe by cross-validation and keeps the best), {advice}"
                )
            lines.append(
                f"the baseline ({b['name']}) is {100 * gap:.1f} points more accurate than this model{where} on the "
                f"same test split; try {advice}, another backbone (headstart rank), for images a larger size "
                "(?size=N on the backbone), or a backbone pretrained on your own data (headstart pretrain)"
            )
    return lines


def _is_source(value: str) -> bool:
    return (
        value.startswith("samples:")
        or Path(value).is_dir()
        or Path(value).suffix in (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
    )
