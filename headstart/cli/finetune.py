"""`lr-find`: the learning-rate range test before fine-tuning."""

from __future__ import annotations

from pathlib import Path

import typer

from headstart.cli import options as o
from headstart.cli.output import console, emit, show_skipped, skipped


def lr_find(
    data: str = typer.Argument(..., help="labelled data: samples:NAME, a folder or a table"),
    backbone: str = typer.Option(None, "--backbone", "-b"),
    out: Path = typer.Option(Path("lr-find.png"), "--out", "-o", help="the loss-vs-learning-rate plot (.png)"),
    head: o.HeadKind = typer.Option("linear", "--head"),
    strategy: o.Strategy = typer.Option(
        "finetune", "--strategy", help="the fine-tuning strategy whose learning-rate ratios to sweep"
    ),
    batch_size: int = typer.Option(32, "--batch-size"),
    start_lr: float = typer.Option(1e-7, "--start-lr"),
    end_lr: float = typer.Option(10.0, "--end-lr"),
    num_it: int = typer.Option(100, "--num-it", help="batches to try (the data repeats if needed)"),
    labels_per_class: int = typer.Option(None, "--labels-per-class", help="keep only N labelled items per class"),
    seed: int = typer.Option(0, "--seed"),
    test_size: float = typer.Option(0.25, "--test-size", help="held out, as in `headstart fit`; not swept on"),
    settings: list[str] = typer.Option(None, "--set", help="any other fine-tuning option as KEY=VALUE (JSON value)"),
    text_column: str = o.TEXT_COLUMN,
    label_column: list[str] = o.LABEL_COLUMNS,
    strict: bool = o.STRICT,
    fmt: o.Format = o.FORMAT,
) -> None:
    """Sweep the learning rate exponentially, plot loss against it, and suggest one (the steepest descent)."""
    if strategy.value not in o.FINETUNING:
        o.refuse(["strategy"], f"{strategy.value} trains no backbone here; choose {', '.join(o.FINETUNING)}")
    from headstart.finetuning import lr_find as run

    ds = o.DataOptions(text_column, tuple(label_column or ()), strict).load(data)
    show_skipped(ds.issues, fmt)
    result = run(
        ds,
        backbone=backbone,
        head=head.value,
        strategy=strategy.value,
        batch_size=batch_size,
        start_lr=start_lr,
        end_lr=end_lr,
        num_it=num_it,
        labels_per_class=labels_per_class,
        seed=seed,
        test_size=test_size,
        out=out,
        progress=fmt.value == "table",
        **o.parse_settings(settings),
    )
    if fmt.value == "json":
        return emit({**result, "skipped": skipped(ds.issues)})
    tried = f"{len(result['lrs'])} learning rates from {result['lrs'][0]:.1e} to {result['lrs'][-1]:.1e}"
    console.print(f"tried {tried}; plot: [bold]{result['png']}[/bold]")
    if result["suggestion"] is None:
        console.print("[yellow]too few steps to suggest a learning rate; raise --num-it[/yellow]")
    else:
        console.print(
            f"suggested --lr [bold]{result['suggestion']:.2e}[/bold] (steepest descent); "
            f"minimum/10: {result['min_lr_over_10']:.2e}"
        )
