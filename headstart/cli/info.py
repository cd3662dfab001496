"""`backbones` and `quickstart`: what is usable offline, and the whole recipe on a bundled data set."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from headstart.cli import options as o
from headstart.cli.output import console, emit


def backbones(fmt: o.Format = o.FORMAT) -> None:
    """List registered backbones and whether each can be used offline right now."""
    from headstart import api

    rows = api.list_backbones()
    if fmt.value == "json":
        return emit(rows)
    table = Table(title="backbones")
    for col in ("spec", "modality", "offline now", "note"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["spec"], r["modality"], "yes" if r["offline"] else "[red]no[/red]", r["note"])
    console.print(table)


def quickstart(
    modality: o.Modality = typer.Option(
        "text",
        "--modality",
        help="text: BBC News + MiniLM; image: digits + EfficientNet-Lite0; audio: spoken digits + speech embedding",
    ),
    out: Path = typer.Option(Path("runs/quickstart"), "--out", "-o"),
    budgets: str = o.BUDGETS,
    seed: int = typer.Option(0, "--seed"),
    fmt: o.Format = o.FORMAT,
) -> None:
    """Run the whole recipe on an embedded default: pretrained features vs a baseline at a few label budgets."""
    from headstart.demo import quickstart as run

    result = run(
        modality.value,
        out=out,
        budgets=o.parse_budgets(budgets),
        seed=seed,
        progress=fmt.value == "table",
        console=None if fmt.value == "json" else console,
    )
    if fmt.value == "json":
        emit(result)
