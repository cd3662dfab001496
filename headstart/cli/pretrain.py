"""`pretrain`: a backbone from unlabelled data, saved for `--backbone local:DIR`."""

from __future__ import annotations

from pathlib import Path

import typer

from headstart.cli import options as o
from headstart.cli.output import console, emit, history_table, show_skipped, skipped


def pretrain(
    ctx: typer.Context,
    data: str = typer.Argument(..., help="unlabelled data (labels, if any, are ignored): samples:NAME, folder, table"),
    method: o.Method = typer.Option(..., "--method", "-m", help="the pretraining objective"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for the backbone (use it as local:DIR) and report"),
    backbone: str = typer.Option(
        None, "--backbone", "-b", help="start from this backbone, or take its architecture with ?init=random"
    ),
    epochs: int = typer.Option(None, "--epochs", help="default: the method's own"),
    batch_size: int = typer.Option(None, "--batch-size", help="default: the method's own"),
    lr: float = typer.Option(None, "--lr", help="default: the method's own"),
    seed: int = typer.Option(0, "--seed"),
    settings: list[str] = typer.Option(None, "--set", help="a method option as KEY=VALUE, e.g. variant=conv"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted run in --out (same settings)"),
    stop_after: int = typer.Option(None, "--stop-after", hidden=True, help="stop after N epochs (as if interrupted)"),
    eval_data: str = typer.Option(
        None, "--eval", help="labelled data for a transfer evaluation; its test split is kept out of pretraining"
    ),
    budgets: str = o.BUDGETS,
    test_size: float = typer.Option(0.25, "--test-size", help="the --eval test split"),
    text_column: str = o.TEXT_COLUMN,
    label_column: list[str] = typer.Option(
        None,
        "--label-column",
        help="the --eval data's label column (default: found by common names)",
        rich_help_panel=o.DATA_PANEL,
    ),
    strict: bool = o.STRICT,
    fmt: o.Format = o.FORMAT,
    devices: str = o.DEVICES,
    accelerator: str = o.ACCELERATOR,
    precision: str = o.PRECISION,
    num_nodes: int = o.NUM_NODES,
    distributed_strategy: str = o.DISTRIBUTED_STRATEGY,
) -> None:
    """Pretrain a backbone on unlabelled data (autoencoder, gan, contrastive, masked), saved for --backbone local:DIR.

    With --eval, a linear probe compares it with raw inputs, PCA of the same size and the starting backbone.
    """
    if not eval_data:
        o.refuse(o.given(ctx, "budgets", "test_size", "label_column"), "only apply with --eval")
    o.one_label_column(label_column, "pretrain --eval")
    eval_budgets = o.parse_budgets(budgets)

    from headstart.pretrain.run import pretrain as run

    loader = o.DataOptions(text_column, tuple(label_column or ()), strict)
    ds = loader.load(data, labels=False)
    labelled = loader.load(eval_data, modality=ds.modality) if eval_data else None
    issues = [*ds.issues, *(labelled.issues if labelled is not None else [])]
    show_skipped(issues, fmt)
    result = run(
        ds,
        method=method.value,
        out=out,
        backbone=backbone,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        **o.parse_settings(settings),
        resume=resume,
        eval_data=labelled,
        eval_budgets=tuple(eval_budgets),
        test_size=test_size,
        stop_after=stop_after,
        progress=fmt.value == "table",
        **o.distributed(devices, accelerator, precision, num_nodes, distributed_strategy),
    )
    if result.global_rank != 0:  # another process of a distributed run: rank 0 reports
        return None
    if fmt.value == "json":
        return emit({**result.to_dict(), "skipped": skipped(issues)})
    for note in result.notes:
        console.print(f"[dim]{note}[/dim]", highlight=False)
    if not result.finished:
        done = result.history[-1]["epoch"] if result.history else 0
        console.print(f"stopped after epoch {done}; continue with --resume (checkpoint in [bold]{out}[/bold])")
        return None
    if result.history:
        console.print(history_table(result.history, f"{method.value} pretraining"))
    if result.evaluation is not None:
        from headstart.pretrain.evaluate import evaluation_table

        console.print(evaluation_table(result.evaluation))
    console.print(f"saved backbone to [bold]{out}[/bold]; use it as --backbone [bold]{result.spec}[/bold]")
