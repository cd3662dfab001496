"""`diagnose`: each check finds the problems planted for it, and reports nothing where nothing was planted."""

from __future__ import annotations

import json

import numpy as np
import pytest

import headstart as hs
from headstart.data import from_arrays, split
from headstart.select.diagnose import (
    centred,
    centroid_z,
    class_balance,
    default_split_test_mask,
    diagnose,
    exact_duplicate_groups,
    label_issues,
    neighbours,
    out_of_fold_probabilities,
    robust_z,
)
from headstart.select.shift import classifier_test, mmd_test, verdict
from tests.conftest import digit_images

TINY = "headstart:tiny-cnn?size=16"


def blobs(n_per_class: int = 60, n_classes: int = 4, dim: int = 24, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    return 5.0 * np.eye(dim)[labels] + rng.normal(size=(len(labels), dim)), labels


# ---------------------------------------------------------------- checks on features


def test_flipped_labels_are_found() -> None:
    x, y = blobs()
    rng = np.random.default_rng(1)
    flipped = rng.choice(len(y), 12, replace=False)  # 5%
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, 4, len(flipped))) % 4
    classes, probs = out_of_fold_probabilities(x, noisy.astype(str), seed=0)
    found = label_issues(probs, np.searchsorted(classes, noisy.astype(str)))
    suspects = {i for i, *_ in found}
    assert suspects <= set(flipped.tolist()) and len(suspects) >= 0.9 * len(flipped)  # no false alarm, recall 90%
    for i, suggested, p_given, p_suggested in found:
        assert classes[suggested] == str(y[i]) and p_suggested > p_given  # the suggestion is the true class
    # clean labels: nothing to report
    classes, probs = out_of_fold_probabilities(x, y.astype(str), seed=0)
    assert label_issues(probs, np.searchsorted(classes, y.astype(str))) == []


def test_duplicates_and_near_duplicates() -> None:
    assert exact_duplicate_groups(["a", "b", "a", "c", "b", "a"]) == [[0, 2, 5], [1, 4]]
    x, _ = blobs(seed=2)
    rng = np.random.default_rng(3)
    copies = rng.choice(len(x), 5, replace=False)
    near = x[copies] + 1e-3 * rng.normal(size=(5, x.shape[1]))
    both = centred(np.vstack([x, near]))
    idx, dist, pairs = neighbours(both, 3, threshold=0.99)
    assert {(i, j) for i, j, _ in pairs} == {(int(c), len(x) + k) for k, c in enumerate(copies)}
    assert idx.shape == (len(both), 3) and np.all(np.diff(dist, axis=1) >= 0)  # nearest first
    assert all(idx[len(x) + k, 0] == c for k, c in enumerate(copies))


def test_outlier_scores() -> None:
    x, y = blobs(seed=4)
    far = np.flatnonzero(y == 1)[:3]
    x[far] += 40 * np.random.default_rng(5).normal(size=(3, x.shape[1]))
    _, dist, _ = neighbours(centred(x), 5)
    z = robust_z(dist.mean(axis=1))
    assert set(np.argsort(-z)[:3]) == set(far.tolist()) and z[far].min() > 3.5  # the planted ones lead the list
    assert set(np.argsort(-centroid_z(centred(x), y))[:3]) == set(far.tolist())


def test_class_balance() -> None:
    b = class_balance(["a"] * 30 + ["b"] * 10 + ["c"] * 5)
    assert b["counts"] == {"a": 30, "b": 10, "c": 5} and b["ratio"] == 6.0 and b["classes"] == 3


def test_shift_tests_see_a_shift_and_no_shift_in_an_iid_split() -> None:
    rng = np.random.default_rng(6)
    x = rng.normal(size=(600, 32))
    source, same = x[:350], x[350:]
    c, m = classifier_test(source, same, permutations=200), mmd_test(source, same, permutations=200)
    assert c.p_value > 0.05 and m.p_value > 0.05 and abs(c.statistic - 0.5) < 0.1
    assert verdict(c, m)[0] == "none"
    shifted = same + np.r_[1.0, np.zeros(31)]  # one unit along one of 32 axes
    c, m = classifier_test(source, shifted, permutations=200), mmd_test(source, shifted, permutations=200)
    assert c.statistic > 0.7 and c.p_value < 0.01 and m.p_value < 0.01
    level, sentence = verdict(c, m)
    assert level in ("clear", "strong", "mild") and "shift" in sentence


# ---------------------------------------------------------------- the whole diagnosis on images


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    """120 digits + 5% flipped labels + 8 exact copies; target: the same digits rotated by 90 degrees."""
    images, labels = digit_images(12, seed=0)
    rng = np.random.default_rng(0)
    flipped = rng.choice(len(images), 6, replace=False)
    noisy = list(labels)
    for i in flipped:
        noisy[i] = str((int(labels[i]) + 1 + rng.integers(9)) % 10)
    copies = rng.choice(len(images), 8, replace=False)
    items = images + [images[i].copy() for i in copies]
    data = from_arrays(items, noisy + [noisy[i] for i in copies])
    target = from_arrays([np.rot90(im).copy() for im in images[::2]])
    out = tmp_path_factory.mktemp("diagnose")
    result = diagnose(data, backbone=TINY, target=target, out=out, progress=False, permutations=200)
    return result, data, copies, flipped, out


def test_planted_duplicates_and_leakage_are_found(planted) -> None:
    result, data, copies, _, _ = planted
    n = len(copies)
    assert len(result.exact_duplicates) == n
    assert {frozenset(g["where"]) for g in result.exact_duplicates} == {
        frozenset({f"item #{c}", f"item #{120 + k}"}) for k, c in enumerate(copies)
    }
    test_mask = default_split_test_mask(data, test_size=0.25, seed=0, task=None)
    across = sum(test_mask[c] != test_mask[120 + k] for k, c in enumerate(copies))
    assert across > 0  # the default split does put some copies on both sides
    exact_leaks = [p for p in result.leakage if p["exact"]]
    assert len(exact_leaks) == across
    train, test = split(data, test_size=0.25, seed=0)
    assert all(p["train"] in train.where and p["test"] in test.where for p in exact_leaks)


def test_flipped_labels_are_listed_with_where(planted) -> None:
    result, _, _, flipped, _ = planted
    assert result.label_issues is not None
    listed = {issue["where"] for issue in result.label_issues}
    assert all(w.startswith("item #") for w in listed)
    # a random tiny CNN on 8x8 digits is a weak encoder: most flips are still among the suspects
    assert len(listed & {f"item #{i}" for i in flipped}) >= len(flipped) // 2


def test_rotated_target_is_a_shift_and_an_iid_split_is_not(planted) -> None:
    result, data, _, _, _ = planted
    assert result.shift["level"] in ("clear", "strong")
    assert result.shift["classifier"]["p_value"] < 0.05 and result.shift["mmd"]["p_value"] < 0.05
    images, _ = digit_images(12, seed=0)
    first, second = from_arrays(images[::2]), from_arrays(images[1::2])
    same = diagnose(first, backbone=TINY, target=second, progress=False, permutations=200)
    assert same.shift["level"] == "none", same.shift["verdict"]


def test_report_files(planted) -> None:
    result, _, _, _, out = planted
    report = json.loads((out / "report.json").read_text())
    assert report["data"]["backbone"] == TINY
    assert len(report["exact_duplicates"]) == len(result.exact_duplicates)
    md = (out / "report.md").read_text()
    assert "Likely mislabelled items" in md and "Domain shift" in md and result.label_issues[0]["where"] in md
    png = (out / "embedding-map.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    from headstart.select.diagnose_report import summary_rows

    checks = [row[0] for row in summary_rows(result)]
    assert checks == [
        "class balance",
        "exact duplicates",
        "near-duplicates",
        "train/test leakage",
        "suspect labels",
        "outliers",
        "domain shift",
    ]


def test_unlabelled_data_and_the_api() -> None:
    images, _ = digit_images(3, seed=0)
    result = hs.diagnose(images + [images[0]], backbone=TINY, progress=False)
    assert result.balance is None and result.label_issues is None and result.leakage is None
    assert len(result.exact_duplicates) == 1
    assert any("no labels" in n for n in result.notes)
