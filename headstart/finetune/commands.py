"""CLI commands of fine-tuning, registered on `headstart.cli.app` (listed in `cli.EXTENSIONS`): `lr-find`."""

from __future__ import annotations

from pathlib import Path

import typer

from headstart.cli import Format, HeadKind, Strategy, _emit, _settings, app, console


@app.command("lr-find")
def lr_find(
    data: str = typer.Argument(..., help="samples:NAME, a folder or a table"),
    backbone: str = typer.Option(None, "--backbone", "-b"),
    out: Path = typer.Option(Path("lr-find.png"), "--out", "-o", help="the loss-vs-learning-rate plot (.png)"),
    head: HeadKind = typer.Option(HeadKind.linear, "--head"),
    strategy: Strategy = typer.Option(Strategy.finetune, "--strategy", help="the LR ratios of this strategy"),
    batch_size: int = typer.Option(32, "--batch-size"),
    start_lr: float = typer.Option(1e-7, "--start-lr"),
    end_lr: float = typer.Option(10.0, "--end-lr"),
    num_it: int = typer.Option(100, "--num-it", help="batches to try (the data repeats if needed)"),
    labels_per_class: int = typer.Option(None, "--labels-per-class"),
    seed: int = typer.Option(0, "--seed"),
    settings: list[str] = typer.Option(None, "--set", help="any other fine-tuning option as KEY=VALUE"),
    fmt: Format = typer.Option(Format.table, "--format"),
) -> None:
    """Sweep the learning rate exponentially, plot loss against it, and suggest one (the steepest descent)."""
    from headstart.finetune import lr_find as run

    if strategy == Strategy.probe:
        raise typer.BadParameter("probe trains no backbone; choose a fine-tuning strategy", param_hint="--strategy")
    result = run(
        data,
        backbone=backbone,
        head=head.value,
        strategy=strategy.value,
        batch_size=batch_size,
        start_lr=start_lr,
        end_lr=end_lr,
        num_it=num_it,
        labels_per_class=labels_per_class,
        seed=seed,
        out=out,
        progress=fmt == Format.table,
        **_settings(settings or []),
    )
    if fmt == Format.json:
        return _emit(fmt, result)
    tried = f"{len(result['lrs'])} learning rates from {result['lrs'][0]:.1e} to {result['lrs'][-1]:.1e}"
    console.print(f"tried {tried}; plot: [bold]{result['png']}[/bold]")
    if result["suggestion"] is None:
        console.print("[yellow]too few steps to suggest a learning rate; raise --num-it[/yellow]")
    else:
        console.print(
            f"suggested --lr [bold]{result['suggestion']:.2e}[/bold] (steepest descent); "
            f"minimum/10: {result['min_lr_over_10']:.2e}"
        )
