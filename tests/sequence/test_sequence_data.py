"""Paired data: tables, clip folders, in-memory pairs; every bad row named; splits keep groups whole; max_train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from headstart.data.dataset import Dataset
from headstart.errors import DataError
from headstart.sequence.data import load_pairs, split_pairs


def _wav(path: Path, seconds: float = 0.2) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), (0.1 * np.sin(np.arange(int(16000 * seconds)) / 5)).astype(np.float32), 16000)
    return path


def test_seq2seq_table_names_every_bad_row(tmp_path: Path) -> None:
    table = tmp_path / "pairs.csv"
    table.write_text("source,target\nhello world,bonjour monde\n,vide\nno target,\n  ok  , fine  \n")
    pairs = load_pairs(table, task="seq2seq")
    assert [(p.source, p.target) for p in pairs.pairs] == [("hello world", "bonjour monde"), ("  ok  ", "fine")]
    assert [str(i) for i in pairs.issues] == [
        "pairs.csv row 2: missing source text in column 'source'",
        "pairs.csv row 3: missing target in column 'target'",
    ]
    with pytest.raises(DataError, match=r"2 bad items \(strict mode\): pairs.csv row 2"):
        load_pairs(table, task="seq2seq", strict=True)


def test_columns_by_name_and_jsonl(tmp_path: Path) -> None:
    table = tmp_path / "news.jsonl"
    table.write_text('{"article": "a long text", "headline": "short", "x": 1}\n{"article": "more", "headline": " "}\n')
    pairs = load_pairs(table, task="seq2seq")
    assert [p.target for p in pairs.pairs] == ["short"]
    assert "empty target in column 'headline'" in str(pairs.issues[0])
    with pytest.raises(DataError, match="no column 'src'.*columns are: article, headline, x"):
        load_pairs(table, task="seq2seq", source_column="src")
    only = tmp_path / "only.csv"
    only.write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match="no source column found.*--source-column"):
        load_pairs(only, task="seq2seq")


def test_clip_table_relative_paths_groups_and_unreadable_audio(tmp_path: Path) -> None:
    for voice in ("anna", "ben"):
        for i in range(3):
            _wav(tmp_path / "clips" / voice / f"{i}.wav")
    (tmp_path / "clips" / "broken.wav").write_bytes(b"RIFF not really")
    rows = [f"clips/{v}/{i}.wav,say {i},{v}" for v in ("anna", "ben") for i in range(3)]
    rows += ["clips/broken.wav,broken,ben", "clips/gone.wav,gone,ben", "clips/anna/0.wav,,anna"]
    table = tmp_path / "clips.csv"
    table.write_text("audio,transcript,speaker\n" + "\n".join(rows) + "\n")
    pairs = load_pairs(table, task="transcribe")
    assert len(pairs) == 6 and all(isinstance(p.source, Path) and p.source.is_absolute() for p in pairs.pairs)
    problems = [str(i) for i in pairs.issues]
    assert any(p.startswith("clips.csv row 7: unreadable audio") for p in problems)
    assert any(p.startswith("clips.csv row 8: clips/gone.wav: audio file not found") for p in problems)
    assert "clips.csv row 9: missing transcript in column 'transcript'" in problems
    train, test = split_pairs(pairs, test_size=0.4, seed=0)
    assert {p.group for p in train.pairs}.isdisjoint({p.group for p in test.pairs})


def test_clip_folder_with_sidecars_or_transcripts_csv(tmp_path: Path) -> None:
    folder = tmp_path / "phrases"
    _wav(folder / "anna" / "a.wav")
    (folder / "anna" / "a.txt").write_text("Good  morning\n")
    _wav(folder / "ben" / "b.wav")
    pairs = load_pairs(folder, task="transcribe")
    assert [(p.target, p.group) for p in pairs.pairs] == [("Good morning", "anna")]
    assert str(pairs.issues[0]) == "phrases/ben/b.wav: missing transcript (no b.txt beside it, no transcripts.csv)"
    (folder / "transcripts.csv").write_text("file,text\nben/b.wav,good night\n")
    pairs = load_pairs(folder, task="transcribe")
    assert [p.target for p in pairs.pairs] == ["good night"]
    assert "no row for 'anna/a.wav' in transcripts.csv" in str(pairs.issues[0])


def test_in_memory_pairs_split_and_max_train() -> None:
    items = [(f"source {i}", f"target {i}") for i in range(20)] + [("x", None), "bad"]
    pairs = load_pairs(items, task="seq2seq")
    assert len(pairs) == 20 and [str(i) for i in pairs.issues] == [
        "pairs #20: missing target",
        "pairs #21: expected a (source, target) pair",
    ]
    train, test = split_pairs(pairs, test_size=0.25, seed=3, max_train=6)
    again, _ = split_pairs(pairs, test_size=0.25, seed=3, max_train=6)
    assert len(train) == 6 and len(test) == 5 and train.pairs == again.pairs
    assert not {p.source for p in train.pairs} & {p.source for p in test.pairs}
    with pytest.raises(DataError, match="no usable pairs left"):
        load_pairs([("a", "")], task="seq2seq")


def test_sample_dataset_keeps_its_fixed_split() -> None:
    ds = Dataset("text", ["a b", "c d", "e f"], {"target": ["a", "c", "e"], "split": ["train", "test", "train"]},
                 ["s #0", "s #1", "s #2"], "samples:toy")  # fmt: skip
    train, test = split_pairs(load_pairs(ds, task="seq2seq"), seed=5)
    assert [p.target for p in train.pairs] == ["a", "e"] and [p.target for p in test.pairs] == ["c"]


def test_bbc_headlines_sample_has_a_fixed_split_without_duplicates() -> None:
    pairs = load_pairs("samples:bbc-headlines", task="seq2seq")
    train, test = split_pairs(pairs, seed=1)
    assert (len(pairs), len(train), len(test)) == (2089, 1672, 417)
    assert split_pairs(pairs, seed=2)[1].pairs == test.pairs  # the seed does not move the fixed split
    first = pairs.pairs[0]
    assert (first.where, first.target) == (
        "samples:bbc-headlines/business/001.txt",
        "Ad sales boost Time Warner profit",
    )
    assert first.source.startswith("Quarterly profits at US media giant TimeWarner jumped 76%")
    assert all(i.problem.startswith("duplicate of") for i in pairs.issues) and len(pairs.issues) == 136
    assert not {p.source for p in train.pairs} & {p.source for p in test.pairs}
