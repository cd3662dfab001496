"""split: deterministic, stratified, with a few labels per class on demand, and clear errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from headstart.data import DataIssue, Dataset, from_arrays, load_data, split
from headstart.errors import DataError


def toy(counts: dict[str, int]) -> Dataset:
    labels = [cls for cls, n in counts.items() for _ in range(n)]
    return from_arrays([f"text {i}" for i in range(len(labels))], labels)


def test_same_seed_same_split_other_seed_other_split() -> None:
    ds = toy({"a": 20, "b": 20, "c": 20})
    train1, test1 = split(ds, seed=3)
    train2, test2 = split(ds, seed=3)
    assert train1.items == train2.items and test1.items == test2.items
    other_train, _ = split(ds, seed=4)
    assert other_train.items != train1.items
    assert sorted(train1.items + test1.items) == sorted(ds.items)
    assert not set(train1.items) & set(test1.items)


def test_split_is_stratified() -> None:
    ds = toy({"big": 60, "small": 20})
    train, test = split(ds, test_size=0.25)
    assert Counter(test.labels) == {"big": 15, "small": 5}
    assert Counter(train.labels) == {"big": 45, "small": 15}
    assert train.where == sorted(train.where, key=lambda w: int(w.split("#")[1]))


def test_labels_per_class_keeps_at_most_n_train_items() -> None:
    ds = toy({"a": 30, "b": 30, "c": 3})
    _, full_test = split(ds, seed=1)
    train, test = split(ds, seed=1, labels_per_class=5)
    assert Counter(train.labels) == {"a": 5, "b": 5, "c": 2}
    assert test.items == full_test.items
    assert split(ds, seed=1, labels_per_class=5)[0].items == train.items
    assert split(ds, seed=2, labels_per_class=5)[0].items != train.items


def test_split_on_a_chosen_task() -> None:
    ds = from_arrays([f"t{i}" for i in range(8)], {"topic": list("aabbaabb"), "tone": list("xyxyxyxy")})
    train, test = split(ds, task="tone", test_size=0.5)
    assert Counter(test.targets["tone"]) == {"x": 2, "y": 2}
    with pytest.raises(
        DataError, match="in-memory data has no label column 'mood'; its label columns are: topic, tone"
    ):
        split(ds, task="mood")


def test_one_class_is_an_error() -> None:
    with pytest.raises(DataError) as err:
        split(toy({"sport": 5}))
    assert str(err.value) == ("only one class ('sport') in column 'label' of in-memory data; at least 2 are needed")


def test_a_class_with_one_item_is_named() -> None:
    with pytest.raises(DataError) as err:
        split(toy({"a": 5, "b": 5, "rare": 1}))
    assert str(err.value) == (
        "class 'rare' in column 'label' of in-memory data has only 1 item; "
        "a class needs at least 2 items to be split into train and test"
    )


def test_unlabelled_and_bad_parameters() -> None:
    with pytest.raises(DataError, match="in-memory data has no labels; splitting needs a label column"):
        split(from_arrays(["a", "b"]))
    ds = toy({"a": 3, "b": 3})
    with pytest.raises(DataError, match="test_size must lie strictly between 0 and 1, not 1.5"):
        split(ds, test_size=1.5)
    with pytest.raises(DataError, match=r"test_size=0\.1 gives 5 train and 1 test items for 2 classes"):
        split(ds, test_size=0.1)
    with pytest.raises(DataError, match="labels_per_class must be at least 1, not 0"):
        split(ds, labels_per_class=0)


def test_issues_survive_the_split(tmp_path: Path) -> None:
    table = tmp_path / "news.csv"
    table.write_text("text,label\n" + "".join(f"t{i},{'ab'[i % 2]}\n" for i in range(8)) + "orphan,\n")
    train, test = split(load_data(table))
    expected = [DataIssue("news.csv row 9", "missing label in column 'label'")]
    assert train.issues == expected and test.issues == expected
    assert train.source == str(table)


def test_split_error_names_the_source_file(tmp_path: Path) -> None:
    table = tmp_path / "one.csv"
    table.write_text("text,label\na,sport\nb,sport\n")
    with pytest.raises(DataError, match=f"only one class \\('sport'\\) in column 'label' of {table}"):
        split(load_data(table))
