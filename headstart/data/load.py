"""`load_data`: one entry point that turns a folder, a table file or `samples:NAME` into a Dataset."""

from __future__ import annotations

from pathlib import Path

from headstart.data.dataset import MODALITIES, Dataset
from headstart.data.folders import load_folder
from headstart.data.samples import SAMPLES, load_sample
from headstart.data.tables import TABLE_EXTENSIONS, load_table
from headstart.errors import DataError


def load_data(
    source: str | Path,
    *,
    modality: str | None = None,
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    strict: bool = False,
) -> Dataset:
    """Load a data source.

    `source` is a folder (one sub-folder per class, or files directly inside for unlabelled data; images,
    .txt texts or audio files), a table (.csv, .tsv, .jsonl, .ndjson, .parquet: a text column or a column of image
    or audio paths, and label columns), or `samples:NAME` (see SAMPLES). `modality` ("image", "text" or
    "audio") forces the modality and is checked against the data. Unusable items are skipped and listed in
    `dataset.issues`; with `strict=True` any such item raises a DataError naming every bad item.
    """
    if modality not in (None, *MODALITIES):
        raise DataError(f"modality must be 'image', 'text' or 'audio', not {modality!r}")
    given = [f"{k}={v!r}" for k, v in (("text_column", text_column), ("label_columns", label_columns)) if v]
    text = str(source)
    if text.startswith("samples:"):
        _no_columns(text, given, "a sample data set")
        return load_sample(text.removeprefix("samples:"), modality=modality, strict=strict)  # type: ignore[arg-type]

    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"{source}: no such file or directory")
    if path.is_dir():
        _no_columns(text, given, "a folder")
        return load_folder(path, modality=modality, strict=strict, source=text)  # type: ignore[arg-type]
    if path.suffix.lower() in TABLE_EXTENSIONS:
        return load_table(
            path,
            modality=modality,  # type: ignore[arg-type]
            text_column=text_column,
            label_columns=label_columns,
            strict=strict,
        )
    samples = ", ".join(f"samples:{name}" for name in SAMPLES)
    raise DataError(
        f"{source}: unsupported file type {path.suffix or '(no extension)'!r}; a data source is a folder, "
        f"a table ({', '.join(TABLE_EXTENSIONS)}) or a sample set ({samples})"
    )


def _no_columns(source: str, given: list[str], what: str) -> None:
    if given:
        tables = ", ".join(TABLE_EXTENSIONS)
        raise DataError(f"{source} is {what}; {', '.join(given)} can only be used with tables ({tables})")
