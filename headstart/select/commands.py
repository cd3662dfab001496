"""CLI commands of backbone selection, registered on `headstart.cli.app` (listed in `cli.EXTENSIONS`):
`rank` and `diagnose`."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.table import Table

from headstart.cli import FORMAT, STRICT, TEXT_COLUMN, Format, _emit, app, console
from headstart.select.scores import SCORES

ScoreName = Enum("ScoreName", {name: name for name in SCORES}, type=str)  # type: ignore[misc]


@app.command()
def rank(
    data: str = typer.Argument(..., help="labelled data: samples:NAME, a folder or a table"),
    more_backbones: list[str] = typer.Argument(
        None, hidden=True, metavar="SPEC", help="specs after --backbones A, as in -b A B C"
    ),
    backbones: list[str] = typer.Option(
        ..., "--backbones", "-b", help="candidate specs: -b A B C, -b A -b B, or -b A,B,C"
    ),
    score: ScoreName = typer.Option("logme", "--score", help="sort by this score"),
    scores: str = typer.Option(
        None, "--scores", help="scores to compute, comma-separated (default: all; leave out linear_probe to save time)"
    ),
    labels_per_class: int = typer.Option(None, "--labels-per-class", help="score with only N labelled items per class"),
    seed: int = typer.Option(0, "--seed", help="seed of the split and of the labelled items kept"),
    test_size: float = typer.Option(0.25, "--test-size", help="held out, as in `headstart fit`; not scored"),
    out: Path = typer.Option(None, "--out", "-o", help="folder for rank.json and rank.md"),
    batch_size: int = typer.Option(32, "--batch-size"),
    text_column: str = TEXT_COLUMN,
    label_column: str = typer.Option(None, "--label-column", help="the label column to score (default: the first)"),
    strict: bool = STRICT,
    fmt: Format = FORMAT,
) -> None:
    """Rank backbones for your data by transferability scores (LogME, LEEP, NCE, H-score, kNN), no fitting needed.

    The cross-validated accuracy of a linear probe is shown beside them as the costly reference.
    """
    from headstart import api
    from headstart.select.ranking import LABELS, SHORT, format_score, score_names

    specs = [s.strip() for spec in [*backbones, *(more_backbones or [])] for s in spec.split(",") if s.strip()]
    ranking = api.rank(
        data,
        backbones=specs,
        score=score.value,
        scores=[s.strip() for s in scores.split(",") if s.strip()] if scores else None,
        labels_per_class=labels_per_class,
        seed=seed,
        test_size=test_size,
        task=label_column,
        out=out,
        batch_size=batch_size,
        text_column=text_column,
        label_columns=[label_column] if label_column else None,
        strict=strict,
        progress=fmt == Format.table,
    )
    if fmt == Format.json:
        return _emit(fmt, {**ranking.to_dict(), "out": str(out) if out else None})
    names = score_names(ranking)
    d = ranking.data
    budget = f"{d['labels_per_class']}/class" if d["labels_per_class"] else "all"
    table = Table(title=f"{d['source']}: {d['n_scored']} training items ({budget}), sorted by {LABELS[score.value]}")
    table.add_column("#", justify="right")
    table.add_column("backbone", overflow="fold")
    for col in ("dim", *(SHORT.get(n, LABELS.get(n, n)) for n in names), "extract s", "score s", "probe s"):
        table.add_column(col, justify="right")
    for i, r in enumerate(ranking.results, 1):
        extract = r.seconds["extract"] + r.seconds.get("extract_source", 0.0)
        cells = [format_score(r.scores[n], 3) for n in names]
        times = [f"{extract:.2f}", f"{r.seconds['score']:.2f}", f"{r.seconds['reference']:.2f}"]
        table.add_row(str(i), r.spec, str(r.embed_dim), *cells, *times)
    console.print(table)
    console.print(
        "Every score shown compares across embedding sizes (the H-score is the shrunk one: the plain H-score grows "
        "with the dimension). Higher is better; compare within a column. probe = cross-validated accuracy of a "
        "linear probe, the costly reference.",
        style="dim",
        highlight=False,
    )
    for r in ranking.results:
        for note in r.notes:
            console.print(f"[dim]{r.spec}: {note}[/dim]", highlight=False)
    for note in ranking.notes:
        console.print(f"[yellow]{note}[/yellow]", highlight=False)
    console.print(f"recommended: [bold]{ranking.recommended or 'none'}[/bold]")
    if out:
        console.print(f"report written to [bold]{out}[/bold]")


@app.command()
def diagnose(
    data: str = typer.Argument(..., help="samples:NAME, a folder or a table"),
    out: Path = typer.Option(..., "--out", "-o", help="folder for report.json, report.md and embedding-map.png"),
    target: str = typer.Option(None, "--target", "-t", help="other data to test for a domain shift against DATA"),
    backbone: str = typer.Option(None, "--backbone", "-b", help="whose embeddings to use (default: by modality)"),
    near_threshold: float = typer.Option(
        0.98, "--near-threshold", help="cosine similarity (centred embeddings) from which items are near-duplicates"
    ),
    outlier_z: float = typer.Option(3.5, "--outlier-z", help="robust z-score of kNN distance above which = outlier"),
    permutations: int = typer.Option(500, "--permutations", help="permutations for the shift tests' p-values"),
    seed: int = typer.Option(0, "--seed", help="seed of the default split checked for leakage"),
    test_size: float = typer.Option(0.25, "--test-size"),
    batch_size: int = typer.Option(32, "--batch-size"),
    text_column: str = TEXT_COLUMN,
    label_column: str = typer.Option(None, "--label-column", help="the label column to check (default: the first)"),
    strict: bool = STRICT,
    fmt: Format = FORMAT,
) -> None:
    """Check data before training: class balance, duplicates and train/test leakage, likely label errors, outliers,
    and with --target a domain-shift test. Writes a Markdown + JSON report and an embedding map."""
    from headstart import api

    result = api.diagnose(
        data,
        target=target,
        backbone=backbone,
        out=out,
        task=label_column,
        near_threshold=near_threshold,
        outlier_z=outlier_z,
        permutations=permutations,
        seed=seed,
        test_size=test_size,
        batch_size=batch_size,
        text_column=text_column,
        label_columns=[label_column] if label_column else None,
        strict=strict,
        progress=fmt == Format.table,
    )
    if fmt == Format.json:
        return _emit(fmt, result.to_dict())
    table = Table(title=f"diagnosis of {result.data['source']} with {result.data['backbone']}")
    for col in ("check", "found", "detail"):
        table.add_column(col, justify="right" if col == "found" else "left")
    for row in result.summary():
        table.add_row(*row)
    console.print(table)
    if result.shift is not None:
        console.print(result.shift["verdict"], highlight=False)
    for note in result.notes:
        console.print(f"[yellow]{note}[/yellow]", highlight=False)
    console.print(f"report written to [bold]{out}[/bold]")
