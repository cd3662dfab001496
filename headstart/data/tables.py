"""Tables: CSV, TSV, JSON Lines and Parquet files holding texts, or paths to images or audio, with label columns."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headstart.data.audio import AUDIO_EXTENSIONS, check_audios
from headstart.data.dataset import DataIssue, Dataset, Modality
from headstart.data.images import IMAGE_EXTENSIONS, check_images
from headstart.data.validate import finish, is_missing, label_value, text_problem
from headstart.errors import DataError

TABLE_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson", ".parquet")
PATH_COLUMNS = ("path", "image", "file", "filepath", "filename", "image_path", "audio", "audio_path", "wav")
TEXT_COLUMNS = ("text", "sentence", "content", "body", "document", "review", "comment", "message", "title")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target", "y", "sentiment", "topic")


@dataclass
class Table:
    """A parsed table: column names, values per column, and a name per row ("news.csv row 3")."""

    columns: list[str]
    values: dict[str, list[Any]]
    rows: list[str]


def read_table(path: Path) -> Table:
    """Parse a table file; a file that cannot be parsed at all raises a DataError naming the file and line."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    if suffix == ".parquet":
        return _read_parquet(path)
    return _read_delimited(path, sep="\t" if suffix == ".tsv" else ",")


def _read_delimited(path: Path, sep: str) -> Table:
    import pandas as pd

    kind = "TSV" if sep == "\t" else "CSV"
    try:
        # object columns keep every cell as written ("007" stays "007"); invalid UTF-8 bytes survive as
        # surrogates so that only the rows holding them are skipped, each with the offending byte named
        df = pd.read_csv(path, sep=sep, dtype=object, encoding="utf-8", encoding_errors="surrogateescape")
    except pd.errors.EmptyDataError:
        raise DataError(f"{path}: empty file, no header row") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise DataError(f"{path}: cannot parse as {kind}: {str(e).strip()}") from None
    columns = [str(c) for c in df.columns]
    values = {str(c): df[c].tolist() for c in df.columns}
    return Table(columns, values, [f"{path.name} row {i + 1}" for i in range(len(df))])


def _read_jsonl(path: Path) -> Table:
    records: list[dict[str, Any]] = []
    rows: list[str] = []
    columns: dict[str, None] = {}
    with open(path, encoding="utf-8", errors="surrogateescape") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as e:
                raise DataError(f"{path} line {number}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(record, dict):
                raise DataError(f"{path} line {number}: expected a JSON object ({{...}}), got {type(record).__name__}")
            records.append(record)
            rows.append(f"{path.name} line {number}")
            columns.update(dict.fromkeys(record))
    values = {c: [r.get(c) for r in records] for c in columns}
    return Table(list(columns), values, rows)


def _read_parquet(path: Path) -> Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        data = pq.read_table(path).to_pydict()
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path}: cannot read as Parquet: {e}") from None
    columns = [str(c) for c in data]
    n = len(next(iter(data.values()), []))
    return Table(columns, {str(c): v for c, v in data.items()}, [f"{path.name} row {i + 1}" for i in range(n)])


def _find(columns: list[str], names: tuple[str, ...], exclude: tuple[str | None, ...] = ()) -> str | None:
    """The first column whose name (case-insensitive) is in `names`, in the order of `names`."""
    by_lower = {c.strip().lower(): c for c in reversed(columns) if c not in exclude}
    return next((by_lower[n] for n in names if n in by_lower), None)


def _require(path: Path, table: Table, column: str, what: str) -> None:
    if column not in table.values:
        raise DataError(
            f"{path}: no column {column!r} (given as the {what}); the columns are: {', '.join(table.columns)}"
        )


def _image_column(table: Table, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> str | None:
    """A path column, if most of its values name image files (or files with other `extensions`)."""
    column = _find(table.columns, PATH_COLUMNS)
    if column is None:
        return None
    names = [str(v) for v in table.values[column] if not is_missing(v)]
    n_image = sum(Path(v).suffix.lower() in extensions for v in names)
    return column if names and n_image * 2 >= len(names) else None


def load_table(
    path: Path,
    *,
    modality: Modality | None = None,
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    strict: bool = False,
) -> Dataset:
    """Load a table of texts (a text column) or images (a path column, relative to the table's folder).

    Columns given by name must exist. Otherwise the text, path and label columns are found by their usual
    names (see TEXT_COLUMNS, PATH_COLUMNS, LABEL_COLUMNS); only the first label column found is used, several
    tasks need `label_columns`. A table without a label column is unlabelled.
    """
    table = read_table(path)
    if text_column is not None:
        _require(path, table, text_column, "text column")
    for column in label_columns or []:
        _require(path, table, column, "label column")

    image_column = None if (text_column is not None or modality in ("text", "audio")) else _image_column(table)
    audio_column = None
    if text_column is None and modality in (None, "audio") and image_column is None:
        audio_column = _image_column(table, AUDIO_EXTENSIONS)
    for kind, found in (("image", image_column), ("audio", audio_column)):
        if modality == kind and found is None:
            raise DataError(
                f"{path}: no column of {kind} paths (expected one named {', '.join(PATH_COLUMNS)}, holding {kind} "
                f"files); the columns are: {', '.join(table.columns)}"
            )
    media_column = image_column or audio_column
    data_column = media_column or text_column or _find(table.columns, TEXT_COLUMNS)
    if data_column is None:
        raise DataError(
            f"{path}: no text column found (looked for {', '.join(TEXT_COLUMNS)}); the columns are: "
            f"{', '.join(table.columns)}. Pass text_column (CLI flag --text-column)"
        )
    if label_columns is None:
        found = _find(table.columns, LABEL_COLUMNS, exclude=(data_column,))
        label_columns = [found] if found else []
    if not table.rows:
        raise DataError(f"{path}: the table has a header but no data rows")

    issues: list[tuple[int, DataIssue]] = []  # (row index, issue), sorted by row at the end
    kept: list[tuple[int, Any]] = []  # (row index, text or image path)
    for i, where in enumerate(table.rows):
        value = table.values[data_column][i]
        if image_column:
            item, problem = _image_path(path.parent, value, image_column)
        elif audio_column:
            item, problem = _image_path(path.parent, value, audio_column, AUDIO_EXTENSIONS, "audio")
        else:
            item, problem = text_problem(value, data_column)
        problems = [problem] if problem else []
        problems += [p for c in label_columns if (p := label_value(table.values[c][i], c)[1])]
        if problems:
            issues.append((i, DataIssue(where, "; ".join(problems))))
        else:
            kept.append((i, item))

    if media_column:
        check = check_images if image_column else check_audios
        decoded = check([item for _, item in kept])
        for (i, _), problem in zip(kept, decoded, strict=True):
            if problem:
                issues.append((i, DataIssue(table.rows[i], f"{table.values[media_column][i]}: {problem}")))
        kept = [k for k, problem in zip(kept, decoded, strict=True) if not problem]
        issues.sort(key=lambda pair: pair[0])

    ds = Dataset(
        modality="image" if image_column else ("audio" if audio_column else "text"),
        items=[item for _, item in kept],
        targets={c: [label_value(table.values[c][i], c)[0] for i, _ in kept] for c in label_columns},
        where=[table.rows[i] for i, _ in kept],
        source=str(path),
        issues=[issue for _, issue in issues],
    )
    return finish(ds, strict)


def _image_path(
    folder: Path, value: Any, column: str, extensions: frozenset[str] = IMAGE_EXTENSIONS, kind: str = "image"
) -> tuple[Path | None, str | None]:
    if is_missing(value) or not str(value).strip():
        return None, f"missing {kind} path in column {column!r}"
    name = str(value).strip()
    path = Path(name).expanduser()
    path = (path if path.is_absolute() else folder / path).resolve()
    if path.suffix.lower() not in extensions:
        return None, f"{name}: not an {kind} file ({path.suffix.lower() or 'no extension'})"
    if not path.is_file():
        return None, f"{name}: {kind} file not found (looked for {path})"
    return path, None
