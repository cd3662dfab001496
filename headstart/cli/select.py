"""`rank` and `diagnose`: choosing a backbone and checking the data before anything trains."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from headstart.cli import options as o
from headstart.cli.output import console, emit, show_skipped, skipped


def rank(
    ctx: typer.Context,
    data: str = typer.Argument(..., help="labelled data: samples:NAME, a folder or a table"),
    more_backbones: list[str] = typer.Argument(
        None, hidden=True, metavar="SPEC", help="specs after --backbones A, as in -b A B C"
    ),
    backbones: list[str] = typer.Option(
        ..., "--backbones", "--backbone", "-b", help="candidate specs: -b A B C, -b A -b B, or -b A,B,C"
    ),
    score: o.ScoreName = typer.Option("logme", "--score", help="sort by this score"),
    scores: str = typer.Option(
        None, "--scores", help="scores to compute, comma-separated (default: all; leave out linear_probe to save time)"
    ),
    labels_per_class: int = typer.Option(None, "--labels-per-class", help="score with only N labelled items per class"),
    seed: int = typer.Option(0, "--seed", help="seed of the split and of the labelled items kept"),
    test_size: float = typer.Option(0.25, "--test-size", help="held out, as in `headstart fit`; not scored"),
    out: Path = typer.Option(None, "--out", "-o", help="folder for rank.json and rank.md (none written without it)"),
    batch_size: int = typer.Option(32, "--batch-size"),
    text_column: str = o.TEXT_COLUMN,
    label_column: list[str] = o.LABEL_COLUMN,
    strict: bool = o.STRICT,
    fmt: o.Format = o.FORMAT,
    engine: o.EngineName = o.ENGINE,
    workers: int = o.WORKERS,
    gpus_per_worker: float = o.GPUS_PER_WORKER,
) -> None:
    """Rank backbones for your data by transferability scores (LogME, LEEP, NCE, H-score, kNN), no fitting needed.

    The cross-validated accuracy of a linear probe is shown beside them as the costly reference.
    """
    from headstart import api
    from headstart.select.ranking import LABELS, SHORT, format_score, score_names

    task = o.one_label_column(label_column, "rank")
    scale = o.scale(ctx, engine, workers, gpus_per_worker)
    specs = [s.strip() for spec in [*backbones, *(more_backbones or [])] for s in spec.split(",") if s.strip()]
    ds = o.DataOptions(text_column, tuple(label_column or ()), strict).load(data)
    show_skipped(ds.issues, fmt)
    ranking = api.rank(
        ds,
        backbones=specs,
        score=score.value,
        scores=[s.strip() for s in scores.split(",") if s.strip()] if scores else None,
        labels_per_class=labels_per_class,
        seed=seed,
        test_size=test_size,
        task=task,
        out=out,
        batch_size=batch_size,
        progress=fmt.value == "table",
        **scale,
    )
    if fmt.value == "json":
        return emit({**ranking.to_dict(), "out": str(out) if out else None, "skipped": skipped(ds.issues)})
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


def diagnose(
    ctx: typer.Context,
    data: str = typer.Argument(..., help="samples:NAME, a folder or a table"),
    out: Path = typer.Option(
        None, "--out", "-o", help="folder for report.json, report.md and embedding-map.png (none written without it)"
    ),
    target: str = typer.Option(None, "--target", "-t", help="other data to test for a domain shift against DATA"),
    backbone: str = typer.Option(None, "--backbone", "-b", help="whose embeddings to use (default: by modality)"),
    near_threshold: float = typer.Option(
        0.98, "--near-threshold", help="cosine similarity (centred embeddings) from which items are near-duplicates"
    ),
    outlier_z: float = typer.Option(3.5, "--outlier-z", help="robust z-score of kNN distance above which = outlier"),
    permutations: int = typer.Option(
        500, "--permutations", help="--target: permutations for the shift tests' p-values"
    ),
    seed: int = typer.Option(0, "--seed", help="seed of the default split checked for leakage"),
    test_size: float = typer.Option(0.25, "--test-size", help="the split checked for leakage, as in `headstart fit`"),
    batch_size: int = typer.Option(32, "--batch-size"),
    text_column: str = o.TEXT_COLUMN,
    label_column: list[str] = o.LABEL_COLUMN,
    strict: bool = o.STRICT,
    fmt: o.Format = o.FORMAT,
    engine: o.EngineName = o.ENGINE,
    workers: int = o.WORKERS,
    gpus_per_worker: float = o.GPUS_PER_WORKER,
) -> None:
    """Check data before training: class balance, duplicates and train/test leakage, likely label errors, outliers,
    and with --target a domain-shift test. With --out, writes a Markdown + JSON report and an embedding map."""
    from headstart import api
    from headstart.select.diagnose_report import summary_rows

    o.refuse([] if target else o.given(ctx, "permutations"), "only applies with --target (the shift tests)")
    task = o.one_label_column(label_column, "diagnose")
    scale = o.scale(ctx, engine, workers, gpus_per_worker)
    loader = o.DataOptions(text_column, tuple(label_column or ()), strict)
    ds = loader.load(data)
    other = loader.load(target, modality=ds.modality, labels=False) if target else None
    show_skipped([*ds.issues, *(other.issues if other is not None else [])], fmt)
    result = api.diagnose(
        ds,
        target=other,
        backbone=backbone,
        out=out,
        task=task,
        near_threshold=near_threshold,
        outlier_z=outlier_z,
        permutations=permutations,
        seed=seed,
        test_size=test_size,
        batch_size=batch_size,
        progress=fmt.value == "table",
        **scale,
    )
    if fmt.value == "json":
        listed = skipped([*ds.issues, *(other.issues if other is not None else [])])
        return emit({**result.to_dict(), "out": str(out) if out else None, "skipped": listed})
    table = Table(title=f"diagnosis of {result.data['source']} with {result.data['backbone']}")
    for col in ("check", "found", "detail"):
        table.add_column(col, justify="right" if col == "found" else "left")
    for row in summary_rows(result):
        table.add_row(*row)
    console.print(table)
    if result.shift is not None:
        console.print(result.shift["verdict"], highlight=False)
    for note in result.notes:
        console.print(f"[yellow]{note}[/yellow]", highlight=False)
    if out:
        console.print(f"report written to [bold]{out}[/bold]")
    else:
        console.print("no report written; give --out DIR for report.md, report.json and an embedding map", style="dim")
