"""CLI command of pretraining, registered on `headstart.cli.app` (listed in `cli.EXTENSIONS`): `pretrain`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from headstart.cli import FORMAT, STRICT, TEXT_COLUMN, Format, _devices, _emit, _settings, app, console
from headstart.pretrain.registry import METHODS

Method = Enum("Method", {name: name for name in METHODS}, type=str)  # type: ignore[misc]


@app.command()
def pretrain(
    data: str = typer.Argument(..., help="unlabelled data (labels, if any, are ignored): samples:NAME, folder, table"),
    method: Method = typer.Option(..., "--method", "-m", help="the pretraining objective"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for the backbone (use it as local:DIR) and report"),
    backbone: str = typer.Option(
        None, "--backbone", "-b", help="start from this backbone, or take its architecture with ?init=random"
    ),
    epochs: int = typer.Option(None, "--epochs", help="default: the method's own"),
    batch_size: int = typer.Option(None, "--batch-size"),
    lr: float = typer.Option(None, "--lr"),
    seed: int = typer.Option(0, "--seed"),
    settings: list[str] = typer.Option(None, "--set", help="a method option as KEY=VALUE, e.g. variant=conv"),
    eval_data: str = typer.Option(
        None, "--eval", help="labelled data for a transfer evaluation; its test split is kept out of pretraining"
    ),
    budgets: str = typer.Option("4,10,all", "--budgets", help="labels per class for --eval, comma-separated"),
    test_size: float = typer.Option(0.25, "--test-size", help="the --eval test split"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run in --out (same settings)"),
    accelerator: str = typer.Option("auto", "--accelerator", help="Fabric accelerator: auto, cpu, cuda, ..."),
    devices: str = typer.Option("1", "--devices", help="Fabric devices, e.g. 1, 2, auto"),
    num_nodes: int = typer.Option(1, "--num-nodes"),
    fabric_strategy: str = typer.Option(
        "auto", "--strategy", "--fabric-strategy", help="Fabric's strategy: auto, ddp, fsdp, ..."
    ),
    precision: str = typer.Option(None, "--precision", help="e.g. 32-true, bf16-mixed, 16-mixed"),
    stop_after: int = typer.Option(None, "--stop-after", hidden=True, help="stop after N epochs (as if interrupted)"),
    text_column: str = TEXT_COLUMN,
    strict: bool = STRICT,
    fmt: Format = FORMAT,
) -> None:
    """Pretrain a backbone on unlabelled data (autoencoder, gan, contrastive, masked), saved for --backbone local:DIR.

    With --eval, a linear probe compares it with raw inputs, PCA of the same size and the starting backbone.
    """
    from headstart.pretrain.evaluate import parse_budgets
    from headstart.pretrain.run import pretrain as run

    result = run(
        data,
        method=method.value,
        out=out,
        backbone=backbone,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        options=_settings(settings or []),
        resume=resume,
        eval_data=eval_data,
        eval_budgets=parse_budgets(budgets),
        test_size=test_size,
        accelerator=accelerator,
        devices=_devices(devices) or 1,
        num_nodes=num_nodes,
        fabric_strategy=fabric_strategy,
        precision=precision,
        stop_after=stop_after,
        text_column=text_column,
        strict=strict,
        progress=fmt == Format.table,
    )
    if result.global_rank != 0:  # another process of a distributed run: rank 0 reports
        return None
    if fmt == Format.json:
        return _emit(fmt, result.to_dict())
    for note in result.notes:
        console.print(f"[dim]{note}[/dim]", highlight=False)
    if not result.finished:
        done = result.history[-1]["epoch"] if result.history else 0
        console.print(f"stopped after epoch {done}; continue with --resume (checkpoint in [bold]{out}[/bold])")
        return None
    if result.history:
        console.print(_history_table(result.history, f"{method.value} pretraining"))
    if result.evaluation is not None:
        from headstart.pretrain.evaluate import evaluation_table

        console.print(evaluation_table(result.evaluation))
    console.print(f"saved backbone to [bold]{out}[/bold]; use it as --backbone [bold]{result.spec}[/bold]")


def _history_table(history: list[dict[str, Any]], title: str) -> Table:
    keys = [k for k in dict.fromkeys(k for r in history for k in r) if k not in ("epoch", "samples")]
    table = Table(title=title)
    table.add_column("epoch", justify="right")
    for key in keys:
        table.add_column(key.replace("_", " "), justify="right")
    rows = history if len(history) <= 12 else [*history[:3], None, *history[-8:]]
    for r in rows:
        if r is None:
            table.add_row("...", *("" for _ in keys))
            continue
        table.add_row(str(r["epoch"]), *(_fmt(r.get(k)) for k in keys))
    return table


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)
