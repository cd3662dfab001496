"""load_data on folders: class sub-folders, unlabelled folders, images and texts, and every bad file reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from headstart.data import DataIssue, load_data
from headstart.errors import DataError


@pytest.fixture
def photos(tmp_path: Path, make_image) -> Path:
    root = tmp_path / "photos"
    for cls in ("dog", "cat"):
        for i in range(3):
            make_image(root / cls / f"{i}.png", seed=i)
    (root / "cat" / ".DS_Store").write_bytes(b"\0\1junk")
    (root / "dog" / "Thumbs.db").write_bytes(b"junk")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.png").write_bytes(b"")
    (root / "README.md").write_text("photos of pets")
    return root


def test_image_folder_one_class_per_subfolder(photos: Path) -> None:
    ds = load_data(photos)
    assert ds.modality == "image"
    assert ds.labels == ["cat"] * 3 + ["dog"] * 3
    assert ds.tasks == ["label"]
    assert ds.where[:2] == ["photos/cat/0.png", "photos/cat/1.png"]
    assert all(isinstance(p, Path) and p.is_absolute() and p.is_file() for p in ds.items)
    assert ds.issues == []
    assert ds.source == str(photos)


def test_bad_images_are_skipped_and_named(photos: Path, make_image, make_truncated) -> None:
    from PIL import ImageFile

    make_truncated(photos / "cat" / "cut.png")
    make_truncated(photos / "dog" / "cut.jpg")
    (photos / "dog" / "empty.jpg").write_bytes(b"")
    (photos / "dog" / "words.jpg").write_text("this is not a picture")
    (photos / "dog" / "notes.xyz").write_text("notes")
    (photos / "stray.png").write_bytes((photos / "cat" / "0.png").read_bytes())

    ds = load_data(photos)

    assert len(ds) == 6
    problems = {issue.where: issue.problem for issue in ds.issues}
    assert problems["photos/cat/cut.png"].startswith("corrupt or truncated image (image file is truncated")
    assert problems["photos/dog/cut.jpg"].startswith("corrupt or truncated image (image file is truncated")
    assert problems["photos/dog/empty.jpg"] == "empty file (0 bytes)"
    assert problems["photos/dog/words.jpg"] == "not an image file (PIL cannot identify its format)"
    assert problems["photos/dog/notes.xyz"] == "not an image file (.xyz)"
    assert problems["photos/stray.png"].startswith("not inside a class folder")
    assert len(ds.issues) == 6
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_strict_names_every_bad_item(photos: Path, make_truncated) -> None:
    make_truncated(photos / "cat" / "cut.png")
    (photos / "dog" / "empty.jpg").write_bytes(b"")
    with pytest.raises(DataError) as err:
        load_data(photos, strict=True)
    msg = str(err.value)
    assert msg.startswith(f"{photos}: 2 bad items (strict mode): ")
    assert "photos/cat/cut.png: corrupt or truncated image" in msg
    assert "photos/dog/empty.jpg: empty file (0 bytes)" in msg


def test_strict_lists_ten_then_counts_the_rest(tmp_path: Path, make_image) -> None:
    root = tmp_path / "many"
    make_image(root / "a" / "ok.png")
    for i in range(13):
        (root / "a" / f"bad{i:02d}.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"13 bad items .*many/a/bad09\.png: empty file.*; \.\.\. and 3 more$"):
        load_data(root, strict=True)


def test_threaded_check_of_many_images(tmp_path: Path, make_image, make_truncated) -> None:
    root = tmp_path / "big"
    for i in range(40):
        make_image(root / ("x" if i % 2 else "y") / f"{i:03d}.png", size=(8, 8), seed=i)
    make_truncated(root / "x" / "017.png")
    ds = load_data(root)
    assert len(ds) == 39
    assert ds.issues[0].where == "big/x/017.png"
    assert "truncated" in ds.issues[0].problem
    assert ds.where == sorted(ds.where)


def test_nothing_left_is_an_error(tmp_path: Path) -> None:
    root = tmp_path / "broken"
    (root / "a").mkdir(parents=True)
    (root / "a" / "1.png").write_bytes(b"")
    (root / "a" / "2.png").write_text("nope")
    with pytest.raises(DataError) as err:
        load_data(root)
    msg = str(err.value)
    assert "no usable items left, all 2 were skipped" in msg
    assert "broken/a/1.png: empty file (0 bytes)" in msg
    assert "broken/a/2.png: not an image file" in msg


def test_files_directly_inside_are_unlabelled(tmp_path: Path, make_image) -> None:
    root = tmp_path / "unlabelled"
    for i in range(3):
        make_image(root / f"{i}.jpg", seed=i)
    ds = load_data(root)
    assert ds.targets == {} and not ds.labelled
    assert ds.where == ["unlabelled/0.jpg", "unlabelled/1.jpg", "unlabelled/2.jpg"]


def test_text_folder_with_bad_texts(tmp_path: Path) -> None:
    root = tmp_path / "news"
    (root / "sport").mkdir(parents=True)
    (root / "tech").mkdir()
    (root / "sport" / "a.txt").write_text("Goal in the last minute.", encoding="utf-8")
    (root / "sport" / "b.txt").write_bytes("Caf\u00e9 ".encode() + b"\xff\xfe end")
    (root / "tech" / "c.txt").write_text("New chip \u2014 faster.", encoding="utf-8")
    (root / "tech" / "d.txt").write_text("  \n\t ")
    (root / "tech" / "e.txt").write_bytes(b"")
    (root / "tech" / "f.png").write_bytes(b"\x89PNG")

    ds = load_data(root)

    assert ds.modality == "text"
    assert ds.items == ["Goal in the last minute.", "New chip \u2014 faster."]
    assert ds.labels == ["sport", "tech"]
    assert ds.issues == [
        DataIssue("news/sport/b.txt", "not valid UTF-8 text (byte 0xff at offset 6)"),
        DataIssue("news/tech/d.txt", "empty text (only whitespace)"),
        DataIssue("news/tech/e.txt", "empty file (0 bytes)"),
        DataIssue("news/tech/f.png", "not a text file (.png)"),
    ]


def test_modality_is_checked(photos: Path) -> None:
    assert load_data(photos, modality="image").modality == "image"
    with pytest.raises(DataError, match="holds image files, not text files"):
        load_data(photos, modality="text")
    with pytest.raises(DataError, match="holds image files, not audio files"):
        load_data(photos, modality="audio")
    with pytest.raises(DataError, match="modality must be 'image', 'text' or 'audio', not 'video'"):
        load_data(photos, modality="video")


def test_missing_source_empty_folder_and_unsupported_type(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope/here: no such file or directory$"):
        load_data(tmp_path / "nope" / "here")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty: the folder is empty"):
        load_data(tmp_path / "empty")
    (tmp_path / "data.xlsx").write_bytes(b"PK")
    with pytest.raises(DataError) as err:
        load_data(tmp_path / "data.xlsx")
    assert "unsupported file type '.xlsx'" in str(err.value)
    assert ".csv, .tsv, .jsonl, .ndjson, .parquet" in str(err.value)
    assert "samples:digits" in str(err.value)


def test_column_options_are_refused_for_folders(photos: Path) -> None:
    with pytest.raises(DataError, match="is a folder; text_column='text' can only be used with tables"):
        load_data(photos, text_column="text")


def test_nested_files_belong_to_their_top_class_folder(tmp_path: Path, make_image) -> None:
    root = tmp_path / "nested"
    make_image(root / "cat" / "a.png")
    make_image(root / "cat" / "indoor" / "b.png")
    make_image(root / "dog" / "c.png")
    (root / "__MACOSX" / "cat").mkdir(parents=True)
    (root / "__MACOSX" / "cat" / "._a.png").write_bytes(b"resource fork")
    ds = load_data(root)
    assert ds.where == ["nested/cat/a.png", "nested/cat/indoor/b.png", "nested/dog/c.png"]
    assert ds.labels == ["cat", "cat", "dog"] and ds.issues == []
