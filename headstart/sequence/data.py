"""Paired data for sequence tasks: tables, folders of clips, in-memory pairs and sample sets -> a `PairSet`.

    pairs = load_pairs("clips.csv", task="transcribe")      # an audio-path column + a transcript column
    pairs = load_pairs("news.jsonl", task="seq2seq")         # a source column + a target column
    pairs = load_pairs("phrases/", task="transcribe")        # clips + transcripts.csv (file,text) or .txt sidecars
    pairs = load_pairs([("hello", "bonjour")], task="seq2seq")
    train, test = split_pairs(pairs, test_size=0.2, seed=0, max_train=200)

Every row that cannot be used becomes a `DataIssue` naming the file/row and what is wrong (missing transcript, empty
target, unreadable audio, missing file); `strict=True` turns any issue into a DataError. Audio paths in a table are
relative to the table's folder. A group column (speaker, voice...) or, in a folder of clips, the first sub-folder
names each pair's group: splits keep groups whole.

Sample sets (`samples:NAME`) come from `headstart.data.samples.load_sample` as a `Dataset` whose items are the
sources, with a `target` column and, for a fixed split, a `split` column holding "train" or "test".
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headstart.data.audio import AUDIO_EXTENSIONS, check_audios
from headstart.data.dataset import DataIssue, Dataset
from headstart.data.tables import TABLE_EXTENSIONS, read_table
from headstart.data.validate import is_missing, summarize, text_problem
from headstart.errors import DataError
from headstart.sequence import TASKS
from headstart.sequence.adapter import Pair, PairSet

SOURCE_COLUMNS = {
    "seq2seq": ("source", "src", "input", "text", "article", "document", "body", "question"),
    "transcribe": ("audio", "path", "file", "audio_path", "filepath", "filename", "wav", "clip"),
}
TARGET_COLUMNS = {
    "seq2seq": ("target", "tgt", "output", "summary", "title", "headline", "translation", "answer"),
    "transcribe": ("transcript", "transcription", "text", "sentence", "target"),
}
GROUP_COLUMNS = ("group", "speaker", "voice", "speaker_id")
TRANSCRIPTS = "transcripts.csv"


def load_pairs(
    data: str | Path | Sequence[tuple[Any, str]] | Dataset | PairSet,
    *,
    task: str,
    source_column: str | None = None,
    target_column: str | None = None,
    strict: bool = False,
) -> PairSet:
    """The usable pairs of `data` for `task` ("seq2seq" or "transcribe"), every unusable one listed as an issue."""
    if task not in TASKS:
        raise DataError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    if isinstance(data, PairSet):
        pairs = data
    elif isinstance(data, Dataset):
        pairs = from_dataset(data, task)
    elif isinstance(data, (str, Path)):
        pairs = _from_path(str(data), task, source_column, target_column)
    else:
        pairs = from_pairs(data, task)
    return finish_pairs(pairs, strict)


def _from_path(text: str, task: str, source_column: str | None, target_column: str | None) -> PairSet:
    if text.startswith("samples:"):
        from headstart.data.samples import load_sample

        return from_dataset(load_sample(text.removeprefix("samples:")), task)
    path = Path(text).expanduser()
    if not path.exists():
        raise DataError(f"{text}: no such file or directory")
    if path.is_dir():
        if task != "transcribe":
            raise DataError(f"{text}: a folder holds audio clips (task transcribe); for {task} give a table")
        return _from_folder(path)
    if path.suffix.lower() not in TABLE_EXTENSIONS:
        raise DataError(
            f"{text}: unsupported file type {path.suffix or '(no extension)'!r}; paired data is a table "
            f"({', '.join(TABLE_EXTENSIONS)}), a folder of audio clips or samples:NAME"
        )
    return _from_table(path, task, source_column, target_column)


def from_pairs(items: Iterable[Any], task: str, source: str = "pairs") -> PairSet:
    """In-memory (source, target) pairs: texts for seq2seq; audio paths or 1-D waveforms for transcribe."""
    pairs, issues = [], []
    for i, item in enumerate(items):
        where = f"{source} #{i}"
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            issues.append(DataIssue(where, "expected a (source, target) pair"))
            continue
        _check(item[0], item[1], where, task, None, pairs, issues, base=Path.cwd())
    return _checked_audio(PairSet(task, pairs, source, issues))


def from_dataset(ds: Dataset, task: str) -> PairSet:
    """A sample set's Dataset (items = sources; `target` and optional `split` columns) as pairs."""
    if "target" not in ds.targets:
        raise DataError(f"{ds.source}: not a paired data set (no 'target' column)")
    splits = ds.targets.get("split")
    groups = ds.groups
    pairs = [
        Pair(item, ds.targets["target"][i], ds.where[i], None if groups is None else groups[i],
             None if splits is None else splits[i])
        for i, item in enumerate(ds.items)
    ]  # fmt: skip
    return PairSet(task, pairs, ds.source, list(ds.issues))


def _from_table(path: Path, task: str, source_column: str | None, target_column: str | None) -> PairSet:
    table = read_table(path)
    if not table.rows:
        raise DataError(f"{path}: the table has a header but no data rows")
    src = _column(path, table.columns, source_column, SOURCE_COLUMNS[task], "source column", "--source-column")
    tgt = _column(path, table.columns, target_column, TARGET_COLUMNS[task], "target column", "--target-column", src)
    group = _find(table.columns, GROUP_COLUMNS, exclude=(src, tgt))
    pairs: list[Pair] = []
    issues: list[DataIssue] = []
    for i, where in enumerate(table.rows):
        g = table.values[group][i] if group else None
        g = None if g is None or is_missing(g) else str(g)
        _check(table.values[src][i], table.values[tgt][i], where, task, g, pairs, issues, base=path.parent,
               columns=(src, tgt))  # fmt: skip
    return _checked_audio(PairSet(task, pairs, str(path), issues))


def _from_folder(root: Path) -> PairSet:
    """Audio clips under `root` with their transcripts: `transcripts.csv` (file,text) or a `.txt` beside each clip."""
    clips = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not clips:
        raise DataError(f"{root}: no audio files ({', '.join(sorted(AUDIO_EXTENSIONS))}) in the folder")
    listed = _transcript_table(root)
    pairs: list[Pair] = []
    issues: list[DataIssue] = []
    for clip in clips:
        rel = clip.relative_to(root).as_posix()
        where = f"{root.name}/{rel}"
        group = rel.split("/")[0] if "/" in rel else None
        if listed is not None:
            target = listed.get(rel)
            if target is None:
                issues.append(DataIssue(where, f"missing transcript (no row for {rel!r} in {TRANSCRIPTS})"))
                continue
        else:
            sidecar = clip.with_suffix(".txt")
            if not sidecar.is_file():
                issues.append(DataIssue(where, f"missing transcript (no {sidecar.name} beside it, no {TRANSCRIPTS})"))
                continue
            target = sidecar.read_text(encoding="utf-8", errors="replace")
        _check(clip, target, where, "transcribe", group, pairs, issues, base=root)
    return _checked_audio(PairSet("transcribe", pairs, str(root), issues))


def _transcript_table(root: Path) -> dict[str, Any] | None:
    path = root / TRANSCRIPTS
    if not path.is_file():
        return None
    table = read_table(path)
    file_col = _column(path, table.columns, None, ("file", "path", "audio", "clip", "filename"), "file column", "")
    text_col = _column(path, table.columns, None, TARGET_COLUMNS["transcribe"], "text column", "", file_col)
    return {str(f).strip(): t for f, t in zip(table.values[file_col], table.values[text_col], strict=True)}


def _check(
    source: Any,
    target: Any,
    where: str,
    task: str,
    group: str | None,
    pairs: list[Pair],
    issues: list[DataIssue],
    *,
    base: Path,
    columns: tuple[str | None, str | None] = (None, None),
) -> None:
    """Append the pair, or an issue saying everything wrong with it."""
    problems = []
    if task == "transcribe":
        item, problem = _audio_source(source, base, columns[0])
    else:
        item, problem = text_problem(source, columns[0])
        problem = problem and problem.replace("text", "source text", 1)
    problems += [problem] if problem else []
    text, problem = _target(target, task, columns[1])
    problems += [problem] if problem else []
    if problems:
        issues.append(DataIssue(where, "; ".join(problems)))
    else:
        pairs.append(Pair(item, text, where, group))


def _target(value: Any, task: str, column: str | None) -> tuple[str | None, str | None]:
    what = "transcript" if task == "transcribe" else "target"
    where = f" in column {column!r}" if column else ""
    if is_missing(value):
        return None, f"missing {what}{where}"
    text, problem = text_problem(value, column)
    if problem and problem.startswith("empty"):
        return None, f"empty {what}{where}"
    return (None, problem) if problem else (" ".join(text.split()), None)


def _audio_source(value: Any, base: Path, column: str | None) -> tuple[Any, str | None]:
    if isinstance(value, np.ndarray):
        return (value, None) if value.ndim == 1 and value.size else (None, f"not a 1-D waveform (shape {value.shape})")
    where = f" in column {column!r}" if column else ""
    if is_missing(value) or not str(value).strip():
        return None, f"missing audio path{where}"
    path = Path(str(value).strip()).expanduser()
    path = (path if path.is_absolute() else base / path).resolve()
    if not path.is_file():
        return None, f"{value}: audio file not found (looked for {path})"
    return path, None


def _checked_audio(pairs: PairSet) -> PairSet:
    """Decode every audio file once; unreadable ones become issues."""
    files = [i for i, p in enumerate(pairs.pairs) if isinstance(p.source, Path)]
    if pairs.task != "transcribe" or not files:
        return pairs
    problems = dict(zip(files, check_audios([pairs.pairs[i].source for i in files]), strict=True))
    bad = {i for i, problem in problems.items() if problem}
    pairs.issues += [DataIssue(pairs.pairs[i].where, f"unreadable audio: {problems[i]}") for i in sorted(bad)]
    pairs.pairs = [p for i, p in enumerate(pairs.pairs) if i not in bad]
    return pairs


def finish_pairs(pairs: PairSet, strict: bool) -> PairSet:
    """Raise in strict mode if any item was skipped, or if nothing usable is left."""
    n = len(pairs.issues)
    if strict and n:
        raise DataError(f"{pairs.source}: {n} bad item{'s' if n > 1 else ''} (strict mode): {summarize(pairs.issues)}")
    if not pairs.pairs:
        if n:
            raise DataError(f"{pairs.source}: no usable pairs left, all {n} were skipped: {summarize(pairs.issues, 5)}")
        raise DataError(f"{pairs.source}: no pairs found")
    return pairs


def _find(columns: list[str], names: tuple[str, ...], exclude: tuple[str | None, ...] = ()) -> str | None:
    by_lower = {c.strip().lower(): c for c in reversed(columns) if c not in exclude}
    return next((by_lower[n] for n in names if n in by_lower), None)


def _column(
    path: Path, columns: list[str], given: str | None, names: tuple[str, ...], what: str, flag: str, *exclude: str
) -> str:
    if given is not None:
        if given not in columns:
            raise DataError(f"{path}: no column {given!r} (given as the {what}); the columns are: {', '.join(columns)}")
        return given
    found = _find(columns, names, exclude)
    if found is None:
        hint = f"; name it with {flag}" if flag else ""
        raise DataError(
            f"{path}: no {what} found (looked for {', '.join(names)}); the columns are: {', '.join(columns)}{hint}"
        )
    return found


def split_pairs(
    pairs: PairSet, *, test_size: float = 0.2, seed: int = 0, max_train: int | None = None
) -> tuple[PairSet, PairSet]:
    """(train, test): the data's own split when every pair carries one; else whole groups (when pairs have groups)
    or single pairs drawn at random (seeded) for the test part. `max_train` keeps that many training pairs
    (a seeded random choice); the test part is left as it is. Both parts keep the source's issues."""
    if not 0.0 < test_size < 1.0:
        raise DataError(f"test_size must lie strictly between 0 and 1, not {test_size}")
    if max_train is not None and max_train < 1:
        raise DataError(f"max_train must be at least 1, not {max_train}")
    n = len(pairs)
    if all(p.split in ("train", "test") for p in pairs.pairs):
        test = np.array([p.split == "test" for p in pairs.pairs])
    elif all(p.group is not None for p in pairs.pairs):
        test = _group_mask([str(p.group) for p in pairs.pairs], test_size, seed, pairs.source)
    else:
        if n < 2:
            raise DataError(f"{pairs.source}: {n} pair; at least 2 are needed for a train and a test part")
        order = np.random.default_rng(seed).permutation(n)
        test = np.zeros(n, dtype=bool)
        test[order[: min(n - 1, max(1, math.ceil(test_size * n)))]] = True
    train_idx = np.flatnonzero(~test)
    if max_train is not None and max_train < len(train_idx):
        train_idx = np.sort(np.random.default_rng(seed).choice(train_idx, size=max_train, replace=False))
    if not len(train_idx) or not test.any():
        raise DataError(f"{pairs.source}: the split leaves no {'training' if not len(train_idx) else 'test'} pairs")
    return subset(pairs, train_idx), subset(pairs, np.flatnonzero(test))


def _group_mask(groups: list[str], test_size: float, seed: int, source: str) -> np.ndarray:
    names = sorted(set(groups))
    if len(names) < 2:
        raise DataError(f"{source}: all pairs belong to one group ({names[0]!r}); a group-wise split needs at least 2")
    order = np.random.default_rng(seed).permutation(len(names))
    chosen, count, target = set(), 0, test_size * len(groups)
    for k in order[: len(names) - 1]:
        if count >= target:
            break
        chosen.add(names[k])
        count += groups.count(names[k])
    return np.array([g in chosen for g in groups])


def subset(pairs: PairSet, indices: Iterable[int]) -> PairSet:
    return PairSet(pairs.task, [pairs.pairs[int(i)] for i in indices], pairs.source, list(pairs.issues))


def fingerprint(pairs: PairSet) -> str:
    """A short hash over every source (text, file bytes or waveform) and target: equal for equal data."""
    import hashlib

    from headstart.data.dataset import content_hash

    h = hashlib.sha256()
    for p in pairs.pairs:
        h.update(content_hash(p.source).encode() + b"\0" + (p.target or "").encode() + b"\0")
    return h.hexdigest()[:16]


def load_sources(
    data: str | Path | Sequence[Any], *, task: str, source_column: str | None = None
) -> tuple[list[Any], list[str], list[DataIssue]]:
    """Inputs to generate from, without targets: (sources, where each came from, skipped items).

    seq2seq: a list of texts, a table (its source column) or a .txt file (one text per line); transcribe: a list of
    audio paths or waveforms, one audio file, a folder of them, or a table (its audio column)."""
    if not isinstance(data, (str, Path)):
        rows = [(item, item if isinstance(item, str) else f"input #{i}") for i, item in enumerate(data)]
        base = Path.cwd()
        return _usable_sources(rows, task, base, source_column, "the inputs")
    path = Path(str(data)).expanduser()
    if not path.exists():
        raise DataError(f"{data}: no such file or directory")
    if path.suffix.lower() in TABLE_EXTENSIONS:
        table = read_table(path)
        src = _column(path, table.columns, source_column, SOURCE_COLUMNS[task], "source column", "--source-column")
        rows = list(zip(table.values[src], table.rows, strict=True))
        base = path.parent
    elif task == "transcribe":
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS) if path.is_dir() else [path]
        rows, base = [(str(p), p.name if p == path else p.relative_to(path).as_posix()) for p in files], Path.cwd()
    elif path.suffix.lower() == ".txt":
        lines = path.read_text(encoding="utf-8", errors="surrogateescape").splitlines()
        rows, base = [(line, f"{path.name} line {i + 1}") for i, line in enumerate(lines)], path.parent
    else:
        raise DataError(f"{data}: give a table ({', '.join(TABLE_EXTENSIONS)}) or a .txt file (one text per line)")
    return _usable_sources(rows, task, base, source_column, str(data))


def _usable_sources(
    rows: list[tuple[Any, str]], task: str, base: Path, column: str | None, what: str
) -> tuple[list[Any], list[str], list[DataIssue]]:
    sources, wheres, issues = [], [], []
    for value, where in rows:
        if task == "transcribe":
            item, problem = _audio_source(value, base, column)
            problem = problem or (check_audios([item])[0] if isinstance(item, Path) else None)
        else:
            item, problem = text_problem(value, column)
        if problem:
            issues.append(DataIssue(where, problem))
        else:
            sources.append(item)
            wheres.append(where)
    if not sources:
        raise DataError(f"{what}: no usable inputs" + (f": {summarize(issues, 5)}" if issues else ""))
    return sources, wheres, issues
