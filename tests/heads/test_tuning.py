"""Choosing a head's settings by cross-validation (headstart.heads.tuning): folds, scores and the choice."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, log_loss

from headstart.heads.tuning import Score, best, clearly_better, cross_validate, fold_scores, folds, sample_for_cv


def test_folds_are_stratified_and_as_many_as_the_rarest_class_allows() -> None:
    y = np.repeat([0, 1, 2], [40, 40, 3])  # the rarest class has 3 items: 3 folds, not 5
    splits = folds(y, 5, seed=0)
    assert len(splits) == 9  # 83 items, below 200: the 3 folds are drawn 3 times
    for fold in splits:
        assert len(np.intersect1d(fold.train, fold.test)) == 0 and len(fold.train) + len(fold.test) == len(y)
        assert np.bincount(y[fold.test], minlength=3)[2] == 1  # one of the 3 rare items in every test part
    assert folds(np.array([0, 0, 1]), 5, seed=0) == []  # a class with one item: nothing to cross-validate


def test_few_items_are_drawn_several_times_and_many_take_three_folds() -> None:
    small = np.repeat([0, 1], 30)  # 60 items: ceil(200 / 60) = 4, capped at 3 draws of 5 folds
    assert len(folds(small, 5, seed=0)) == 15
    large = np.repeat([0, 1], 600)  # above 1000 items: 3 folds, one draw
    assert len(folds(large, 5, seed=0)) == 3


def test_sample_for_cv_keeps_every_class_in_proportion() -> None:
    y = np.repeat([0, 1, 2], [3000, 1000, 200])
    keep = sample_for_cv(y, seed=0, limit=420)
    assert len(keep) == 420 and np.all(np.diff(keep) > 0)
    np.testing.assert_array_equal(np.bincount(y[keep]), [300, 100, 20])
    np.testing.assert_array_equal(sample_for_cv(y[:50], seed=0), np.arange(50))  # few items: all of them


def test_fold_scores_are_scikit_learns_accuracy_and_log_loss() -> None:
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=50)
    y = rng.integers(0, 4, 50)
    acc, loss = fold_scores(proba, y)
    assert acc == pytest.approx(accuracy_score(y, proba.argmax(1)))
    assert loss == pytest.approx(log_loss(y, proba, labels=range(4)))


def test_cross_validate_scores_each_candidate_on_every_fold() -> None:
    y = np.repeat([0, 1], 20)
    splits = folds(y, 4, seed=0)

    def fit_predict(params, train, test):  # "right" knows the answer, "wrong" answers the other class
        proba = np.eye(2)[y[test] if params["right"] else 1 - y[test]]
        return {f"right={params['right']}": proba}

    right, wrong = cross_validate([{"right": True}, {"right": False}], fit_predict, splits, y)
    assert right.accuracy == 1.0 and wrong.accuracy == 0.0 and len(right.per_fold) == len(splits)
    assert right.log_loss < wrong.log_loss


def test_best_keeps_the_default_unless_the_gain_is_clear() -> None:
    default = Score({"C": 1.0}, 0.80, 0.5, 0.05, (0.80, 0.70, 0.90, 0.80))
    noisy = Score({"C": 10.0}, 0.82, 0.5, 0.15, (1.00, 0.50, 1.00, 0.78))  # +0.02 on average, up and down
    steady = Score({"C": 0.1}, 0.85, 0.4, 0.05, (0.85, 0.75, 0.95, 0.85))  # +0.05 on every fold
    assert best([default, noisy], default={"C": 1.0}) is default
    assert best([default, noisy, steady], default={"C": 1.0}) is steady
    assert best([default, noisy]) is noisy  # without a default: the best mean
    tie = Score({"C": 100.0}, 0.80, 0.3, 0.05, (0.80, 0.70, 0.90, 0.80))
    assert best([default, tie]) is tie  # equal accuracy: the lower log loss
    assert clearly_better(np.array([0.05, 0.05, 0.05])) and not clearly_better(np.array([0.004, 0.004, 0.004]))


def test_folds_with_groups_keep_each_item_and_its_copies_on_one_side() -> None:
    y_items = np.repeat(np.arange(3), 8)  # 24 items in 3 classes, each with 2 augmented copies after them
    groups = np.tile(np.arange(24), 3)
    y = np.tile(y_items, 3)
    splits = folds(y, 5, seed=0, groups=groups)
    assert len(splits) >= 5
    for fold in splits:
        assert not set(groups[fold.train]) & set(groups[fold.test])
        assert len(fold.test) == 3 * len(set(groups[fold.test]))  # a test item comes with both of its copies
        assert set(y[fold.test]) == {0, 1, 2}  # still stratified, by item
    assert sorted(np.concatenate([f.test for f in splits[:5]])) == list(range(72))  # one draw covers every row once


def test_sample_for_cv_with_groups_keeps_whole_groups() -> None:
    groups = np.tile(np.arange(2000), 3)
    y = np.tile(np.arange(2000) % 4, 3)
    keep = sample_for_cv(y, seed=0, limit=3000, groups=groups)
    kept_groups, counts = np.unique(groups[keep], return_counts=True)
    assert (counts == 3).all() and 900 <= len(kept_groups) <= 1000
    assert np.bincount(y[keep]).min() >= 0.2 * len(keep)


def test_folds_with_speaker_groups_test_on_speakers_never_trained_on() -> None:
    """Groups that hold several classes (a speaker says every word): whole speakers go to a fold's test part."""
    speakers = np.repeat(np.arange(12), 9)  # 12 speakers, 3 words each, 3 times
    y = np.tile(np.repeat(np.arange(3), 3), 12)
    splits = folds(y, 5, seed=0, groups=speakers)
    assert len(splits) == 5 * 2  # 108 rows: the folds are drawn twice
    for fold in splits:
        assert not set(speakers[fold.train]) & set(speakers[fold.test])
        assert set(y[fold.test]) == {0, 1, 2} and set(y[fold.train]) == {0, 1, 2}
    assert sorted(np.concatenate([f.test for f in splits[:5]])) == list(range(108))  # one draw covers every row
    assert [list(f.test) for f in splits[:5]] != [list(f.test) for f in splits[5:]]  # the second draw differs
    assert len(folds(y, 5, seed=0, groups=speakers % 3)) == 3  # 3 speakers: one fold each, drawn once
    assert folds(y, 5, seed=0, groups=np.zeros(108)) == []  # one speaker: nothing to hold out
    lone = np.where(y == 0, 0, speakers)  # every "0" said by speaker 0 alone: no fold could both train and test it
    assert folds(y, 5, seed=0, groups=lone) == []
    assert len(folds(y, 5, seed=0, groups=np.where(y == 0, speakers % 2, speakers))) == 2 * 2  # "0" by 2: 2 folds


def test_sample_for_cv_with_speaker_groups_keeps_whole_speakers() -> None:
    speakers = np.repeat(np.arange(100), 60)
    y = np.tile(np.arange(6), 1000)
    keep = sample_for_cv(y, seed=0, limit=3000, groups=speakers)
    kept, counts = np.unique(speakers[keep], return_counts=True)
    assert (counts == 60).all() and len(kept) == 50
