"""Checks shared by every loader: UTF-8 text, label values, and what becomes of skipped items (strict mode)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from headstart.data.dataset import DataIssue, Dataset
from headstart.errors import DataError

MAX_LISTED = 10

# surrogateescape maps an undecodable byte b to the code point U+DC00 + b (b >= 0x80)
_SURROGATE_LOW, _SURROGATE_HIGH = "\udc80", "\udcff"


def decode_text(data: bytes) -> tuple[str | None, str | None]:
    """Decode file bytes as UTF-8 (a leading BOM is dropped): `(text, None)` or `(None, problem)`."""
    if not data:
        return None, "empty file (0 bytes)"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        return None, f"not valid UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start})"
    text = text.removeprefix("\ufeff")
    if not text.strip():
        return None, "empty text (only whitespace)"
    return text, None


def undecodable(text: str) -> str | None:
    """For text read with errors="surrogateescape": the first byte that was not valid UTF-8, if any."""
    for i, ch in enumerate(text):
        if _SURROGATE_LOW <= ch <= _SURROGATE_HIGH:
            offset = len(text[:i].encode("utf-8", "surrogateescape"))
            return f"not valid UTF-8 text (byte 0x{ord(ch) - 0xDC00:02x} at offset {offset})"
    return None


def text_problem(value: Any, column: str | None = None) -> tuple[str | None, str | None]:
    """Check one text value from a table or an in-memory list: `(text, None)` or `(None, problem)`."""
    where = f" in column {column!r}" if column else ""
    if is_missing(value):
        return None, f"missing text{where}"
    if isinstance(value, bytes):
        text, problem = decode_text(value)
        return (text, None) if problem is None else (None, f"{problem}{where}")
    text = value if isinstance(value, str) else str(value)
    bad = undecodable(text)
    if bad:
        return None, f"{bad}{where}"
    if not text.strip():
        return None, f"empty text{where}"
    return text, None


def is_missing(value: Any) -> bool:
    """None, NaN (pandas' missing value in object columns) or pandas.NA."""
    if value is None:
        return True
    if isinstance(value, float):
        return math.isnan(value)
    return type(value).__name__ in ("NAType", "NaTType")


def label_value(value: Any, column: str) -> tuple[str | None, str | None]:
    """A label as a string, `(label, None)`, or `(None, problem)`.

    A float that is a whole number becomes an integer string: pandas reads 1 as 1.0 in a column with gaps."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):  # numpy scalars
        value = value.item()
    if is_missing(value):
        return None, f"missing label in column {column!r}"
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError as e:
            return None, f"label in column {column!r} is not valid UTF-8 text (byte 0x{value[e.start]:02x})"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    label = str(value).strip()
    if not label:
        return None, f"missing label in column {column!r}"
    bad = undecodable(label)
    if bad:
        return None, f"label in column {column!r} is {bad}"
    return label, None


def summarize(issues: Sequence[DataIssue], limit: int = MAX_LISTED) -> str:
    """`where: problem; ...` for the first `limit` issues, then "... and N more"."""
    text = "; ".join(str(issue) for issue in issues[:limit])
    if len(issues) > limit:
        text += f"; ... and {len(issues) - limit} more"
    return text


def finish(ds: Dataset, strict: bool) -> Dataset:
    """Raise if strict mode meets a skipped item, or if nothing usable is left; otherwise return `ds`."""
    n = len(ds.issues)
    if strict and n:
        raise DataError(f"{ds.source}: {n} bad item{'s' if n > 1 else ''} (strict mode): {summarize(ds.issues)}")
    if not ds.items:
        if n:
            raise DataError(f"{ds.source}: no usable items left, all {n} were skipped: {summarize(ds.issues, limit=5)}")
        raise DataError(f"{ds.source}: no items found")
    return ds
