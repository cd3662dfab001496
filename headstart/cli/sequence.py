"""The command line of sequence tasks: `fit --task transcribe|seq2seq`, and `predict`/`evaluate` on a sequence
model's folder (recognised by its manifest). `headstart.cli.fit` hands over to these at the top of each command;
options that only classify are refused by name, as the other commands refuse theirs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table

from headstart.cli import options as o
from headstart.cli.output import console, emit, show_skipped

SEQUENCE_OPTIONS = ("max_train", "max_test", "source_column", "target_column", "num_beams", "max_length")
CLASSIFY_ONLY = ("head", "labels_per_class", "refit", "time_budget", "class_weight", "text_column", "label_column")
CLASSIFY_ONLY += ("augment", "dropout", "label_smoothing", "l2sp", "patience", "val_size", "accumulate")
CLASSIFY_ONLY += ("top_k", "noise_snr", "runtime", "engine", "workers", "gpus_per_worker")
TRAIN_SETTINGS = ("warmup", "weight_decay", "clip", "eval_max")  # --set KEY=VALUE for the loop; other keys: the model


def is_bundle(path: Path) -> bool:
    from headstart.sequencing import is_sequence_bundle

    return is_sequence_bundle(path)


def refuse_sequence_options(ctx: typer.Context, what: str) -> None:
    """A classification command given options of sequence tasks: refused by name."""
    o.refuse(o.given(ctx, *[n for n in SEQUENCE_OPTIONS if n in ctx.params]), f"do not apply to {what}: they are "
             "for --task transcribe or seq2seq and the models it saves")  # fmt: skip
    strategy = ctx.params.get("strategy")
    if strategy is not None and strategy.value in o.SEQUENCE_ONLY:
        raise o.NotApplicable(f"--strategy {strategy.value} applies to --task transcribe or seq2seq")


def fit(ctx: typer.Context, task: str) -> None:
    """`headstart fit DATA --task transcribe|seq2seq`."""
    from headstart import api

    p = ctx.params
    o.refuse(o.given(ctx, *[n for n in CLASSIFY_ONLY if n in p]), f"only apply to classification, not --task {task}")
    strategy = p["strategy"].value if o.given(ctx, "strategy") else "full"
    if strategy not in ("full", "decoder", "lora"):
        raise o.NotApplicable(f"--strategy {strategy} classifies; --task {task} takes full, decoder or lora")
    if p["backbone"] and len(p["backbone"]) > 1:
        raise o.NotApplicable(f"--task {task} fine-tunes one --backbone")
    extra = o.parse_settings(p["settings"])
    train_options = {k: extra.pop(k) for k in list(extra) if k in TRAIN_SETTINGS}
    if o.given(ctx, "weight_decay"):
        train_options["weight_decay"] = p["weight_decay"]
    if o.given(ctx, *o.DISTRIBUTED):
        from headstart.training.settings import DistributedConfig

        d = o.distributed(p["devices"], p["accelerator"], p["precision"], p["num_nodes"], p["distributed_strategy"])
        train_options["distributed"] = DistributedConfig(**d)
    given = {k: p[k] for k in ("epochs", "lr", "num_beams") if p[k] is not None}
    fmt = p["fmt"].value
    model = api.fit(
        p["data"], task=task, backbone=p["backbone"][0] if p["backbone"] else None, out=p["out"],
        strategy=strategy, max_train=p["max_train"], max_test=p["max_test"], test=p["test"],
        test_size=p["test_size"], seed=p["seed"],
        batch_size=p["batch_size"], max_length=p["max_length"], resume=p["resume"], baseline=p["baseline"],
        strict=p["strict"], source_column=p["source_column"], target_column=p["target_column"],
        progress=fmt == "table", train_options=train_options, **given, **extra,
    )  # fmt: skip
    report = model.report
    if fmt == "json":
        return emit({**report, "out": str(p["out"])})
    show_skipped(report["skipped"], fmt)
    console.print(scores_table(report))
    console.print(f"saved model and report to [bold]{escape(str(p['out']))}[/bold]")


def predict(ctx: typer.Context, model_dir: Path, inputs: list[str]) -> None:
    """`headstart predict SEQUENCE_MODEL INPUTS...`: generated text per input (a table/.txt file/folder, or texts)."""
    from headstart.sequencing import predict_sequence

    p = ctx.params
    o.refuse(
        o.given(ctx, *[n for n in (*CLASSIFY_ONLY, "target_column") if n in p]), "do not apply to a sequence model"
    )
    source = inputs[0] if len(inputs) == 1 and _is_file(inputs[0]) else inputs
    rows, issues = predict_sequence(model_dir, source, num_beams=p["num_beams"], max_length=p["max_length"],
                                    source_column=p["source_column"])  # fmt: skip
    show_skipped(issues, "table")  # on stderr in both formats: the JSON payload is a list of rows
    if p["fmt"].value == "json":
        return emit(rows)
    table = Table(title=f"outputs of {model_dir}")
    table.add_column("input", overflow="ellipsis", max_width=50)
    table.add_column("output")
    for row in rows:
        table.add_row(escape(str(row["input"])), escape(row["output"]))
    console.print(table)


def evaluate(ctx: typer.Context, model_dir: Path, data: str) -> None:
    """`headstart evaluate SEQUENCE_MODEL DATA`: the task's metrics, beside the pretrained model before fine-tuning
    (zero-shot Whisper, an `hf:` encoder-decoder) and, for seq2seq, the lead words."""
    from headstart.sequencing import evaluate_sequence

    p = ctx.params
    o.refuse(o.given(ctx, *[n for n in CLASSIFY_ONLY if n in p]), "do not apply to a sequence model")
    report = evaluate_sequence(
        model_dir, data, num_beams=p["num_beams"], max_length=p["max_length"], strict=p["strict"],
        source_column=p["source_column"], target_column=p["target_column"], out=p["out"],
    )  # fmt: skip
    if p["fmt"].value == "json":
        return emit(report)
    show_skipped(report["skipped"], "table")
    console.print(scores_table(report))
    if report.get("baseline_unavailable"):
        console.print(f"[yellow]no pretrained baseline:[/yellow] {escape(report['baseline_unavailable'])}")
    if p["out"]:
        console.print(f"report written to [bold]{escape(str(p['out']))}[/bold]")


def scores_table(report: dict[str, Any]) -> Table:
    """The model beside its baselines, one row each, on the same held-out pairs."""
    names = list(report["metrics"])
    table = Table(title=f"{report['title']} — {report['n_test']} held-out pairs")
    table.add_column("model")
    for name in names:
        table.add_column(name, justify="right")
    for label, m in {"this model": report["metrics"], **report.get("baselines", {})}.items():
        table.add_row(escape(label), *(f"{m[n]:.2f}" if n in m else "-" for n in names))
    return table


def _is_file(value: str) -> bool:
    return Path(value).is_file() or Path(value).is_dir()
