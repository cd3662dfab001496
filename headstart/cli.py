"""The command line: a thin layer over `headstart.api`. Errors a user can cause end in one line and exit code 2."""

from __future__ import annotations

import json
import sys
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Transfer learning with pretrained models: pretrain, embed, fit a head or fine-tune, evaluate, predict.",
)


def _console(stderr: bool = False) -> Console:
    """Rich's own width on a terminal; piped to a file or a log, 160 columns rather than rich's 80, so wide tables
    (rank's) stay readable. COLUMNS, when set, wins."""
    import os

    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=160 if piped else None)


console = _console()
err = _console(stderr=True)


class Format(str, Enum):
    table = "table"
    json = "json"


class HeadKind(str, Enum):
    linear = "linear"
    mlp = "mlp"


class Strategy(str, Enum):
    probe = "probe"
    auto = "auto"
    setfit = "setfit"
    finetune = "finetune"
    gradual = "gradual"
    layer_decay = "layer-decay"
    lora = "lora"


class Augment(str, Enum):
    none = "none"
    light = "light"
    strong = "strong"


class Modality(str, Enum):
    text = "text"
    image = "image"
    audio = "audio"


FORMAT = typer.Option(Format.table, "--format", help="table for people, json for machines")
STRICT = typer.Option(False, "--strict", help="stop at the first bad item instead of skipping and reporting it")
TEXT_COLUMN = typer.Option(None, "--text-column", help="column holding the text (default: found by common names)")
LABEL_COLUMNS = typer.Option(None, "--label-column", help="label column; repeat it for several tasks")


def _emit(fmt: Format, payload: Any) -> None:
    if fmt == Format.json:
        sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def _metrics_table(report: dict[str, Any]) -> Table:
    table = Table(title=report["title"])
    for col in ("task", "accuracy", "macro-F1", "n scored", "baseline", "baseline acc."):
        table.add_column(col, justify="right" if col not in ("task", "baseline") else "left")
    for task, m in report["tasks"].items():
        b = m.get("baseline", {})
        base_acc = f"{b['accuracy']:.4f}" if b else "-"
        table.add_row(task, f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}", str(m["n"]), b.get("name", "-"), base_acc)
    return table


def _leaderboard_table(report: dict[str, Any]) -> Table:
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
            tuned = report.get("strategy", "probe") != "probe"
            advice = "another --strategy or more epochs" if tuned else "fine-tuning (--strategy gradual)"
            lines.append(
                f"the baseline ({b['name']}) is {100 * gap:.1f} points more accurate than this model{where} on the "
                f"same test split; try another backbone (headstart rank), {advice}, for images a larger size "
                "(?size=N on the backbone), or a backbone pretrained on your own data (headstart pretrain)"
            )
    return lines


def _show_skipped(report: dict[str, Any]) -> None:
    skipped = report.get("skipped", [])
    if skipped:
        err.print(f"[yellow]skipped {len(skipped)} bad item(s):[/yellow]")
        for line in skipped[:20]:
            err.print(f"  {line}", markup=False, highlight=False)
        if len(skipped) > 20:
            err.print(f"  ... and {len(skipped) - 20} more (listed in the report)")


@app.command()
def fit(
    data: str = typer.Argument(..., help="samples:NAME, a folder (one sub-folder per class) or a CSV/JSONL/Parquet"),
    backbone: list[str] = typer.Option(
        None, "--backbone", "-b", help="e.g. st:all-MiniLM-L6-v2, timm:resnet18; repeat it for --strategy auto"
    ),
    out: Path = typer.Option(..., "--out", "-o", help="folder for the saved model and its report"),
    head: HeadKind = typer.Option(HeadKind.linear, "--head", help="linear (softmax) or mlp (Dense, relu), tuned by CV"),
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
    text_column: str = TEXT_COLUMN,
    label_column: list[str] = LABEL_COLUMNS,
    strict: bool = STRICT,
    fmt: Format = FORMAT,
    strategy: Strategy = typer.Option(
        Strategy.probe,
        "--strategy",
        help="probe: frozen backbone, cached features; auto: compare recipes by CV; setfit: contrastive text tuning; "
        "the others fine-tune the backbone",
    ),
    epochs: int = typer.Option(None, "--epochs", help="fine-tuning epochs (default 5)"),
    lr: float = typer.Option(None, "--lr", help="head learning rate, top of the schedule (default 2e-3)"),
    augment: Augment = typer.Option(None, "--augment", help="training augmentation (default light)"),
    weight_decay: float = typer.Option(None, "--weight-decay"),
    dropout: float = typer.Option(None, "--dropout", help="before a linear head; inside an MLP head"),
    label_smoothing: float = typer.Option(None, "--label-smoothing"),
    l2sp: float = typer.Option(None, "--l2sp", help="L2-SP strength: pull the backbone toward its pretrained weights"),
    patience: int = typer.Option(None, "--patience", help="early stopping after N epochs without a better val score"),
    val_size: float = typer.Option(None, "--val-size", help="fraction of training items held out for validation"),
    accumulate: int = typer.Option(
        None, "--accumulate", help="optimizer step every N batches (effective batch: batch size x N)"
    ),
    devices: str = typer.Option(None, "--devices", help="Fabric devices, e.g. 1, 2, auto"),
    num_nodes: int = typer.Option(None, "--num-nodes"),
    fabric_strategy: str = typer.Option(None, "--fabric-strategy", help="Fabric's strategy: auto, ddp, fsdp, ..."),
    precision: str = typer.Option(None, "--precision", help="e.g. 32-true, bf16-mixed, 16-mixed"),
    resume: bool = typer.Option(False, "--resume", help="continue an interrupted fine-tuning run in --out"),
    settings: list[str] = typer.Option(None, "--set", help="any other fine-tuning option as KEY=VALUE (JSON value)"),
) -> None:
    """Extract features with a pretrained backbone, fit a head, evaluate on a held-out split, save the model.

    With --strategy finetune / gradual / layer-decay / lora, the backbone trains with the head (see lr-find too).
    """
    from headstart import api

    given = {
        "epochs": epochs,
        "lr": lr,
        "augment": augment.value if augment else None,
        "weight_decay": weight_decay,
        "dropout": dropout,
        "label_smoothing": label_smoothing,
        "l2sp": l2sp,
        "patience": patience,
        "val_size": val_size,
        "accumulate": accumulate,
        "devices": _devices(devices),
        "num_nodes": num_nodes,
        "fabric_strategy": fabric_strategy,
        "precision": precision,
    }
    options: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    options.update(_settings(settings or []))
    allowed = {
        Strategy.probe: set(),
        Strategy.setfit: {"epochs", "lr", "pairs_per_item", "loss"},
        Strategy.auto: set(given),  # passed on to the fine-tuning candidates
    }.get(strategy)
    if allowed is not None:
        ignored = sorted(set(options) - allowed) + (["resume"] if resume else [])
        if ignored:
            names = ", ".join("--" + n.replace("_", "-") for n in ignored)
            raise typer.BadParameter(
                f"{names} only apply to fine-tuning; choose --strategy finetune, gradual, layer-decay or lora",
                param_hint="--strategy",
            )
    else:
        options["resume"] = resume
    if test_size < 0 or test_size >= 1:
        raise typer.BadParameter(f"{test_size} is not in [0, 1)", param_hint="--test-size")
    specs = backbone or [None]
    model = api.fit(
        data,
        backbone=specs[0] if len(specs) == 1 else specs,
        head=head.value,
        out=out,
        labels_per_class=labels_per_class,
        seed=seed,
        test=test,
        test_size=test_size,
        refit=refit,
        time_budget=time_budget,
        class_weight="balanced" if class_weight else None,
        baseline=baseline,
        batch_size=batch_size,
        text_column=text_column,
        label_columns=label_column or None,
        strict=strict,
        progress=fmt == Format.table,
        strategy=strategy.value,
        **options,
    )
    if model.report.get("global_rank", 0) != 0:  # another process of a distributed run: rank 0 reports
        return None
    if fmt == Format.json:
        return _emit(fmt, {**model.report, "out": str(out)})
    _show_skipped(model.report)
    if "leaderboard" in model.report:
        console.print(_leaderboard_table(model.report))
    console.print(_metrics_table(model.report))
    for key, words in (("accuracy_from", "accuracy measured on"), ("trained_on", "the saved model learned from")):
        if key in model.report:
            console.print(f"{words} {escape(str(model.report[key]))}", highlight=False)
    for line in baseline_warnings(model.report):
        err.print(f"[yellow]{escape(line)}[/yellow]", highlight=False)
    console.print(f"saved model and report to [bold]{out}[/bold]")


@app.command()
def predict(
    model_dir: Path = typer.Argument(..., help="a folder saved by `headstart fit`"),
    inputs: list[str] = typer.Argument(..., help="image files, text files, literal texts, folders or tables"),
    top_k: int = typer.Option(1, "--top-k"),
    fmt: Format = FORMAT,
) -> None:
    """Predict labels for new inputs with a saved model."""
    from headstart import api
    from headstart.model import as_dataset

    model = api.load(model_dir)
    source: Any = inputs[0] if len(inputs) == 1 and _is_source(inputs[0]) else inputs
    rows = api.predict(model, as_dataset(source, model.modality), top_k=top_k)
    if fmt == Format.json:
        return _emit(fmt, rows)
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


def _devices(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def _settings(pairs: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE` pairs; VALUE is read as JSON when it parses (3, 0.1, true, null, ["a"]), else as text."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


def _is_source(value: str) -> bool:
    return (
        value.startswith("samples:")
        or Path(value).is_dir()
        or Path(value).suffix in (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
    )


@app.command()
def evaluate(
    model_dir: Path = typer.Argument(..., help="a folder saved by `headstart fit`"),
    data: str = typer.Argument(..., help="labelled data to evaluate on"),
    out: Path = typer.Option(None, "--out", "-o", help="folder for report.json, report.md and the confusion PNG"),
    text_column: str = TEXT_COLUMN,
    label_column: list[str] = LABEL_COLUMNS,
    strict: bool = STRICT,
    noise_snr: float = typer.Option(None, "--noise-snr", help="audio: add white noise at this SNR (dB) to every clip"),
    fmt: Format = FORMAT,
) -> None:
    """Evaluate a saved model on labelled data: accuracy, macro-F1, per-class precision/recall, confusion matrix."""
    from headstart import api

    report = api.evaluate(
        model_dir,
        data,
        out=out,
        text_column=text_column,
        label_columns=label_column or None,
        strict=strict,
        progress=fmt == Format.table,
        noise_snr=noise_snr,
    )
    if fmt == Format.json:
        return _emit(fmt, report)
    _show_skipped(report)
    console.print(_metrics_table(report))
    for task, m in report["tasks"].items():
        table = Table(title=f"per class: {task}")
        for col in ("class", "precision", "recall", "F1", "support"):
            table.add_column(col, justify="left" if col == "class" else "right")
        for label, c in m["per_class"].items():
            table.add_row(label, f"{c['precision']:.3f}", f"{c['recall']:.3f}", f"{c['f1']:.3f}", str(c["support"]))
        console.print(table)
    if out:
        console.print(f"report written to [bold]{out}[/bold]")


@app.command()
def embed(
    data: str = typer.Argument(..., help="samples:NAME, a folder or a table"),
    out: Path = typer.Option(..., "--out", "-o", help="a .npy file (float32, items x dims)"),
    backbone: str = typer.Option(None, "--backbone", "-b"),
    batch_size: int = typer.Option(32, "--batch-size"),
    cache: bool = typer.Option(True, "--cache/--no-cache", help="read and fill the on-disk feature cache"),
    text_column: str = TEXT_COLUMN,
    strict: bool = STRICT,
    fmt: Format = FORMAT,
) -> None:
    """Extract features (f_feat(x) = f_enc(x)) of every item into a .npy file, through the cache."""
    from headstart import api

    if out.suffix != ".npy":
        raise typer.BadParameter(f"{out}: the output must be a .npy file", param_hint="--out")
    x = api.embed(
        data,
        backbone=backbone,
        out=out,
        batch_size=batch_size,
        cache=cache,
        text_column=text_column,
        strict=strict,
        progress=fmt == Format.table,
    )
    payload = {"out": str(out), "shape": list(x.shape), "dtype": str(x.dtype)}
    if fmt == Format.json:
        return _emit(fmt, payload)
    console.print(f"wrote {x.shape[0]} x {x.shape[1]} float32 features to [bold]{out}[/bold]")


@app.command()
def backbones(fmt: Format = FORMAT) -> None:
    """List registered backbones and whether each can be used offline right now."""
    from headstart import api

    rows = api.list_backbones()
    if fmt == Format.json:
        return _emit(fmt, rows)
    table = Table(title="backbones")
    for col in ("spec", "modality", "offline now", "note"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["spec"], r["modality"], "yes" if r["offline"] else "[red]no[/red]", r["note"])
    console.print(table)


@app.command()
def quickstart(
    modality: Modality = typer.Option(
        Modality.text,
        "--modality",
        help="text: BBC News + MiniLM; image: digits + EfficientNet-Lite0; audio: spoken digits + speech embedding",
    ),
    out: Path = typer.Option(Path("runs/quickstart"), "--out", "-o"),
    budgets: str = typer.Option("4,16,all", "--budgets", help="labels per class to try, comma-separated"),
    seed: int = typer.Option(0, "--seed"),
    fmt: Format = FORMAT,
) -> None:
    """Run the whole recipe on an embedded default: pretrained features vs a baseline at a few label budgets."""
    from headstart.demo import quickstart as run

    result = run(
        modality.value,
        out=out,
        budgets=budgets,
        seed=seed,
        progress=fmt == Format.table,
        console=None if fmt == Format.json else console,
    )
    if fmt == Format.json:
        _emit(fmt, result)


# Commands of other capabilities live in their own modules and register themselves on `app` when imported.
EXTENSIONS: tuple[str, ...] = (
    "headstart.finetune.commands",
    "headstart.select.commands",
    "headstart.pretrain.commands",
)


def _load_extensions() -> None:
    import importlib

    for module in EXTENSIONS:
        importlib.import_module(module)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2; bugs keep their traceback."""
    from headstart.errors import HeadstartError

    try:
        app(standalone_mode=False)
    except HeadstartError as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)  # one line, however long
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click's usage errors arrive here in non-standalone mode
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(getattr(exc, "exit_code", 2))
        raise


def _is_usage_error(exc: Exception) -> bool:
    """A click usage error (missing argument, unknown option, bad value, unknown command), from click itself or from
    the copy of click that Typer vendors (Typer 0.29: `typer._click`), whichever version resolved."""
    import click

    kinds: list[type] = [click.exceptions.ClickException]
    try:
        from typer._click.exceptions import ClickException as VendoredClickException

        kinds.append(VendoredClickException)
    except ImportError:
        pass
    return isinstance(exc, tuple(kinds))


_load_extensions()

if __name__ == "__main__":  # `python -m headstart.cli`: run the imported module, where extensions registered
    from headstart.cli import main as canonical_main

    canonical_main()
