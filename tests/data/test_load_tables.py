"""load_data on CSV, TSV, JSON Lines and Parquet tables: columns found or given, row-level issues, parse errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from headstart.data import DataIssue, load_data
from headstart.errors import DataError


def write_csv(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_csv_texts_with_bad_rows(tmp_path: Path) -> None:
    news = write_csv(
        tmp_path / "news.csv",
        b"text,label",
        b"Markets rally,business",
        b"bad \xff bytes,business",
        b'"  ",sport',
        b",sport",
        b"Cup final tonight,",
        b'"Late goal, again",sport',
    )
    ds = load_data(news)
    assert ds.modality == "text"
    assert ds.items == ["Markets rally", "Late goal, again"]
    assert ds.labels == ["business", "sport"]
    assert ds.where == ["news.csv row 1", "news.csv row 6"]
    assert ds.issues == [
        DataIssue("news.csv row 2", "not valid UTF-8 text (byte 0xff at offset 4) in column 'text'"),
        DataIssue("news.csv row 3", "empty text in column 'text'"),
        DataIssue("news.csv row 4", "missing text in column 'text'"),
        DataIssue("news.csv row 5", "missing label in column 'label'"),
    ]


def test_strict_table_names_each_row(tmp_path: Path) -> None:
    news = write_csv(tmp_path / "news.csv", b"text,label", b"ok,a", b"bad \xff,a", b"fine,")
    with pytest.raises(DataError) as err:
        load_data(news, strict=True)
    assert str(err.value) == (
        f"{news}: 2 bad items (strict mode): "
        "news.csv row 2: not valid UTF-8 text (byte 0xff at offset 4) in column 'text'; "
        "news.csv row 3: missing label in column 'label'"
    )


def test_given_label_column_must_exist(tmp_path: Path) -> None:
    news = write_csv(tmp_path / "news.csv", b"text,label", b"hello,a")
    with pytest.raises(DataError) as err:
        load_data(news, label_columns=["topic"])
    assert str(err.value) == f"{news}: no column 'topic' (given as the label column); the columns are: text, label"
    with pytest.raises(DataError, match="no column 'body' \\(given as the text column\\); the columns are: text"):
        load_data(news, text_column="body")


def test_no_text_column_says_to_pass_one(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "t.csv", b"words,label", b"hello,a")
    with pytest.raises(DataError) as err:
        load_data(table)
    msg = str(err.value)
    assert msg.startswith(f"{table}: no text column found")
    assert "the columns are: words, label" in msg
    assert "--text-column" in msg
    assert load_data(table, text_column="words").items == ["hello"]


def test_several_label_columns_are_several_tasks(tmp_path: Path) -> None:
    table = write_csv(
        tmp_path / "multi.csv",
        b"review,sentiment,topic",
        b"great phone,pos,tech",
        b"awful film,neg,",
        b"fine match,pos,sport",
    )
    ds = load_data(table, label_columns=["sentiment", "topic"])
    assert ds.tasks == ["sentiment", "topic"]
    assert ds.targets == {"sentiment": ["pos", "pos"], "topic": ["tech", "sport"]}
    assert ds.issues == [DataIssue("multi.csv row 2", "missing label in column 'topic'")]
    # found by name, one task only: the first known label name
    assert load_data(table).tasks == ["sentiment"]


def test_columns_found_case_insensitively_and_numeric_labels_kept_as_written(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "r.csv", b"Id,Review,Label", b"1,good,1", b"2,bad,0", b"3,meh,", b"4,ok,007")
    ds = load_data(table)
    assert ds.items == ["good", "bad", "ok"]
    assert ds.labels == ["1", "0", "007"]
    assert ds.issues == [DataIssue("r.csv row 3", "missing label in column 'Label'")]


def test_table_without_label_column_is_unlabelled(tmp_path: Path) -> None:
    ds = load_data(write_csv(tmp_path / "u.csv", b"text", b"one", b"two"))
    assert ds.targets == {} and ds.items == ["one", "two"]


def test_tsv(tmp_path: Path) -> None:
    ds = load_data(write_csv(tmp_path / "t.tsv", b"sentence\tclass", b"a, b and c\tx", b"d\ty"))
    assert ds.items == ["a, b and c", "d"] and ds.labels == ["x", "y"]


def test_broken_csv_names_file_and_line(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "b.csv", b"text,label", b"ok,a", b"too,many,fields")
    with pytest.raises(DataError) as err:
        load_data(table)
    assert str(err.value).startswith(f"{table}: cannot parse as CSV")
    assert "line 3" in str(err.value)
    with pytest.raises(DataError, match="header but no data rows"):
        load_data(write_csv(tmp_path / "h.csv", b"text,label"))


def test_jsonl_rows_are_named_by_line(tmp_path: Path) -> None:
    lines = [{"text": "first", "label": "a"}, {"text": "", "label": "b"}, None, {"text": "third", "label": None}]
    path = tmp_path / "d.jsonl"
    path.write_text("\n".join("" if r is None else json.dumps(r) for r in lines) + "\n")
    ds = load_data(path)
    assert ds.items == ["first"] and ds.where == ["d.jsonl line 1"]
    assert ds.issues == [
        DataIssue("d.jsonl line 2", "empty text in column 'text'"),
        DataIssue("d.jsonl line 4", "missing label in column 'label'"),
    ]


def test_jsonl_broken_line_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "d.ndjson"
    path.write_text('{"text": "ok", "label": "a"}\n{"text": "oops", "label": \n')
    with pytest.raises(DataError, match=r"d\.ndjson line 2: not valid JSON \(Expecting value at column 27\)"):
        load_data(path)
    path.write_text('{"text": "ok", "label": "a"}\n["text", "label"]\n')
    with pytest.raises(DataError, match=r"d\.ndjson line 2: expected a JSON object \(\{\.\.\.\}\), got list"):
        load_data(path)


def test_jsonl_undecodable_field(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'{"text": "ok", "label": "a"}\n{"text": "x\xe9y", "label": "a"}\n{"text": "z", "label": "b"}\n')
    ds = load_data(path)
    assert ds.issues == [DataIssue("d.jsonl line 2", "not valid UTF-8 text (byte 0xe9 at offset 1) in column 'text'")]


def test_parquet(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "p.parquet"
    table = pa.table({"content": ["alpha", "beta", None], "target": [1, 2, 3]})
    pq.write_table(table, path)
    ds = load_data(path)
    assert ds.items == ["alpha", "beta"] and ds.labels == ["1", "2"]
    assert ds.issues == [DataIssue("p.parquet row 3", "missing text in column 'content'")]
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="bad.parquet: cannot read as Parquet"):
        load_data(tmp_path / "bad.parquet")


def test_image_table_paths_relative_to_the_table(tmp_path: Path, make_image, make_truncated) -> None:
    make_image(tmp_path / "img" / "a.png")
    make_image(tmp_path / "img" / "b.jpg")
    make_truncated(tmp_path / "img" / "c.png")
    table = write_csv(
        tmp_path / "pets.csv",
        b"filepath,label",
        b"img/a.png,cat",
        b"img/gone.png,dog",
        b"img/b.jpg,dog",
        b"img/c.png,cat",
        b"img/notes.txt,cat",
        b",dog",
    )
    ds = load_data(table)
    assert ds.modality == "image"
    assert ds.items == [(tmp_path / "img" / "a.png").resolve(), (tmp_path / "img" / "b.jpg").resolve()]
    assert ds.labels == ["cat", "dog"] and ds.where == ["pets.csv row 1", "pets.csv row 3"]
    assert [i.where for i in ds.issues] == ["pets.csv row 2", "pets.csv row 4", "pets.csv row 5", "pets.csv row 6"]
    assert ds.issues[0].problem.startswith("img/gone.png: image file not found")
    assert ds.issues[1].problem.startswith("img/c.png: corrupt or truncated image")
    assert ds.issues[2].problem == "img/notes.txt: not an image file (.txt)"
    assert ds.issues[3].problem == "missing image path in column 'filepath'"


def test_table_modality_is_checked(tmp_path: Path) -> None:
    table = write_csv(tmp_path / "news.csv", b"text,label", b"hello,a")
    assert load_data(table, modality="text").modality == "text"
    with pytest.raises(DataError, match="news.csv: no column of image paths .*the columns are: text, label"):
        load_data(table, modality="image")
