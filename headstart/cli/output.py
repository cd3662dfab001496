"""What the commands print: consoles, JSON, the list of skipped items, and tables several commands share."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

LISTED = 20  # skipped items listed on the terminal; the rest are counted (reports list them all)


def _console(stderr: bool = False) -> Console:
    """Rich's own width on a terminal; piped to a file or a log, 160 columns rather than rich's 80, so wide tables
    (rank's) stay readable. COLUMNS, when set, wins."""
    stream = sys.stderr if stderr else sys.stdout
    piped = not stream.isatty() and "COLUMNS" not in os.environ
    return Console(stderr=stderr, width=160 if piped else None)


console = _console()
err = _console(stderr=True)


def emit(payload: Any) -> None:
    """The result of `--format json`: one JSON document on stdout, nothing else there."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def error_line(message: str) -> None:
    """One line on stderr, however long: `error: ...`."""
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)


def skipped(issues: Iterable[Any]) -> list[str]:
    """Items skipped while loading, one `where: problem` string each (file, or file + row, and the reason)."""
    return [str(issue) for issue in issues]


def show_skipped(issues: Iterable[Any], fmt: Any) -> None:
    """Every command lists the items it skipped this way: on stderr, `where: problem`, the first 20 of them.

    With `--format json` the payload carries them under "skipped" instead (predict, whose payload is a list of
    rows, lists them here in both formats)."""
    lines = skipped(issues)
    if not lines or str(getattr(fmt, "value", fmt)) == "json":
        return
    err.print(f"[yellow]skipped {len(lines)} bad item(s):[/yellow]")
    for line in lines[:LISTED]:
        err.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    if len(lines) > LISTED:
        err.print(f"  ... and {len(lines) - LISTED} more (--format json lists them all)", highlight=False)


def metrics_table(report: dict[str, Any]) -> Table:
    table = Table(title=report["title"])
    for col in ("task", "accuracy", "macro-F1", "n scored", "baseline", "baseline acc."):
        table.add_column(col, justify="right" if col not in ("task", "baseline") else "left")
    for task, m in report["tasks"].items():
        b = m.get("baseline", {})
        base_acc = f"{b['accuracy']:.4f}" if b else "-"
        table.add_row(task, f"{m['accuracy']:.4f}", f"{m['macro_f1']:.4f}", str(m["n"]), b.get("name", "-"), base_acc)
    return table


def history_table(history: list[dict[str, Any]], title: str) -> Table:
    """Per-epoch numbers: the first 3 and the last 8 epochs of a long run."""
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
        table.add_row(str(r["epoch"]), *(_number(r.get(k)) for k in keys))
    return table


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 100 else f"{value:.0f}"
    return "" if value is None else str(value)
