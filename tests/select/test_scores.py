"""Transferability scores: values worked out by hand on tiny inputs, LogME against direct maximisation, behaviour."""

from __future__ import annotations

import math

import numpy as np
import pytest

from headstart.select.scores import (
    SCORES,
    hscore,
    knn_accuracy,
    leep,
    linear_probe_accuracy,
    logme,
    logme_slow,
    nce,
)


def blobs(n_per_class: int = 30, n_classes: int = 3, dim: int = 16, seed: int = 0):
    """Well-separated classes: unit noise around centres 6 apart along different axes."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    features = 6.0 * np.eye(dim)[labels] + rng.normal(size=(len(labels), dim))
    return features, labels


def noise(n: int = 200, dim: int = 16, n_classes: int = 2, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, dim)), rng.integers(0, n_classes, n)


# ---------------------------------------------------------------- LEEP and NCE, by hand

# Source labels z = [a, a, a, b] for targets y = [cat, cat, dog, dog]:
# P(cat, a) = 2/4, P(dog, a) = 1/4, P(dog, b) = 1/4, so P(cat | a) = 2/3, P(dog | a) = 1/3, P(dog | b) = 1.
HARD_VALUE = (2 * math.log(2 / 3) + math.log(1 / 3) + math.log(1)) / 4


def test_nce_by_hand():
    # -H(Y | Z) = sum P(y, z) log P(y | z) = 1/2 log 2/3 + 1/4 log 1/3 + 1/4 log 1
    assert nce(np.array(["a", "a", "a", "b"]), np.array(["cat", "cat", "dog", "dog"])) == pytest.approx(HARD_VALUE)


def test_nce_extremes_and_probabilities():
    y = [0, 0, 1, 1]
    assert nce(np.array([5, 5, 7, 7]), y) == pytest.approx(0.0)  # source labels determine the target
    assert nce(np.array([0, 1, 0, 1]), y) == pytest.approx(-math.log(2))  # independent: -H(Y) = -log 2
    probs = np.array([[0.9, 0.1], [0.6, 0.4], [0.7, 0.3], [0.2, 0.8]])  # argmax: a, a, a, b
    assert nce(probs, ["cat", "cat", "dog", "dog"]) == pytest.approx(HARD_VALUE)


def test_leep_by_hand_one_hot_equals_nce():
    # With one-hot source probabilities, LEEP's mean log P(y_i | z_i) is exactly NCE's value.
    probs = np.eye(2)[[0, 0, 0, 1]]
    assert leep(probs, ["cat", "cat", "dog", "dog"]) == pytest.approx(HARD_VALUE)


def test_leep_by_hand_soft():
    probs = np.array([[0.8, 0.2], [0.6, 0.4], [0.4, 0.6], [0.2, 0.8]])
    # Joint P(y, z) = column sums per class / 4: P(0,0) = (.8 + .6) / 4 = .35, P(0,1) = .15, P(1,0) = .15,
    # P(1,1) = .35; P(z) = .5 each, so P(0|0) = P(1|1) = .7 and P(1|0) = P(0|1) = .3.
    # Expected predictions: .7*.8 + .3*.2 = .62, .7*.6 + .3*.4 = .54, .3*.4 + .7*.6 = .54, .3*.2 + .7*.8 = .62.
    expected = (math.log(0.62) + math.log(0.54)) / 2
    assert leep(probs, [0, 0, 1, 1]) == pytest.approx(expected)


def test_leep_uniform_source_gives_log_prior():
    assert leep(np.full((4, 3), 1 / 3), [0, 0, 1, 1]) == pytest.approx(math.log(0.5))


# ---------------------------------------------------------------- H-score, by hand


def test_hscore_by_hand_one_dimension():
    # f = 0, 2 | 4, 6: class means 1 and 5 around the overall mean 3, so the between-class variance is 4;
    # the total variance is (9 + 1 + 1 + 9) / 4 = 5. H = 4 / 5.
    f = np.array([[0.0], [2.0], [4.0], [6.0]])
    assert hscore(f, [0, 0, 1, 1]) == pytest.approx(0.8)
    # In one dimension Ledoit-Wolf's target (mean variance times I) is the variance itself: nothing changes.
    assert hscore(f, ["x", "x", "y", "y"], shrinkage=True) == pytest.approx(0.8)


def test_hscore_uninformative_uncorrelated_dimension_adds_nothing():
    # Second column 0, 1, 1, 0: uncorrelated with the first, and both class means are 0.5.
    f = np.array([[0.0, 0.0], [2.0, 1.0], [4.0, 1.0], [6.0, 0.0]])
    assert hscore(f, [0, 0, 1, 1]) == pytest.approx(0.8)


def test_hscore_invariant_to_invertible_linear_maps():
    f, y = blobs(dim=6)
    mixing = np.random.default_rng(1).normal(size=(6, 6))
    assert hscore(f @ mixing + 3.0, y) == pytest.approx(hscore(f, y), rel=1e-6)


def test_hscore_grows_with_dimension_on_noise_unless_shrunk():
    small, y = noise(n=200, dim=5)
    large, _ = noise(n=200, dim=80)
    assert hscore(large, y) > 3 * hscore(small, y)
    assert hscore(large, y, shrinkage=True) < 0.1 * hscore(large, y)


# ---------------------------------------------------------------- LogME


@pytest.mark.parametrize("n, d", [(60, 8), (20, 30)])
def test_logme_matches_direct_maximisation(n: int, d: int):
    rng = np.random.default_rng(n * d)
    labels = rng.integers(0, 3, n)
    features = rng.normal(size=(n, d))
    features[:, 0] += labels  # some signal, so that the optimum is inside, not at alpha = infinity
    assert logme(features, labels) == pytest.approx(logme_slow(features, labels), rel=1e-3)


def test_logme_does_not_depend_on_the_feature_scale():
    # The maximised evidence is scale-free (alpha absorbs the scale); N < D, where local maxima are common.
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, 12)
    features = rng.normal(size=(12, 40))
    features[:, 0] += labels
    value = logme(features, labels)
    for scale in (1e-4, 30.0, 1e5):
        assert logme(scale * features, labels) == pytest.approx(value, rel=1e-6)


def test_logme_ranks_separated_features_above_noise():
    separated, labels = blobs()
    random = np.random.default_rng(1).normal(size=separated.shape)
    assert logme(separated, labels) > logme(random, labels) + 0.1


def test_logme_string_and_int_labels_agree():
    f, y = blobs(n_per_class=10, dim=4)
    names = np.array(["ant", "bee", "cow"])[y]
    assert logme(f, names) == pytest.approx(logme(f, y))


# ---------------------------------------------------------------- kNN and the linear probe


def test_knn_and_linear_probe_on_separable_blobs():
    f, y = blobs()
    assert knn_accuracy(f, y) >= 0.95
    assert linear_probe_accuracy(f, y) >= 0.95


def test_knn_and_linear_probe_on_noise_are_near_chance():
    f, y = noise()
    assert 0.3 <= knn_accuracy(f, y) <= 0.7
    assert 0.3 <= linear_probe_accuracy(f, y) <= 0.7


# ---------------------------------------------------------------- input validation


@pytest.mark.parametrize("score", [logme, hscore, knn_accuracy, linear_probe_accuracy])
def test_feature_scores_reject_bad_input(score):
    f, y = blobs(n_per_class=6, dim=3)
    with pytest.raises(ValueError, match="18 samples but 17 labels"):
        score(f, y[:-1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        score(f, np.zeros(len(f)))
    bad = f.copy()
    bad[4, 1] = np.nan
    bad[7, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or inf in 2 of 18 rows"):
        score(bad, y)
    with pytest.raises(ValueError, match="2-D array"):
        score(f[:, 0], y)


def test_source_scores_reject_bad_input():
    probs = np.array([[0.8, 0.2], [0.6, 0.4], [0.4, 0.6]])
    with pytest.raises(ValueError, match="3 samples but 2 labels"):
        leep(probs, [0, 1])
    with pytest.raises(ValueError, match="at least 2 classes"):
        nce([0, 1, 1], ["a", "a", "a"])
    with pytest.raises(ValueError, match="sum to 1"):
        leep(np.log(probs), [0, 1, 1])  # log-probabilities, not probabilities


def test_cross_validation_settings_are_checked():
    f, y = blobs(n_per_class=3, dim=4)
    with pytest.raises(ValueError, match="at least 5 samples per class"):
        knn_accuracy(f, y)
    with pytest.raises(ValueError, match="k must be between 1 and 6"):
        knn_accuracy(f, y, k=7, folds=3)  # 9 samples: training folds of 6


# ---------------------------------------------------------------- the registry


def test_every_registered_score_runs_on_its_input():
    f, y = blobs(n_per_class=10, dim=4)
    probs = np.exp(f) / np.exp(f).sum(axis=1, keepdims=True)
    for name, spec in SCORES.items():
        value = spec.fn(f if spec.needs == "features" else probs, y)
        assert isinstance(value, float) and math.isfinite(value), name
    assert not SCORES["hscore"].comparable_across_dims
    assert SCORES["hscore_shrinkage"].comparable_across_dims


@pytest.mark.parametrize(("n", "dim"), [(50, 200), (300, 20), (30, 1000)])
def test_shrunk_hscore_matches_scikit_learn_ledoit_wolf(n: int, dim: int) -> None:
    """The closed-form shrinkage and Cholesky solve give sklearn's ledoit_wolf + pseudo-inverse numbers."""
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(n)
    y = rng.integers(0, 3, n)
    f = rng.normal(size=(n, dim)) + 3.0 * np.eye(dim)[y]
    centred = f - f.mean(axis=0)
    counts = np.bincount(y)
    means = np.stack([centred[y == c].mean(axis=0) for c in range(3)])
    cov, coef = ledoit_wolf(centred, assume_centered=True)
    between = (1 - coef) * (means.T * (counts / n)) @ means
    expected = np.trace(np.linalg.pinv(cov, hermitian=True) @ between)
    assert hscore(f, y, shrinkage=True) == pytest.approx(expected, rel=1e-9)
