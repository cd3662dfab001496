"""Heads follow the scikit-learn estimator contract and agree with scikit-learn where they should."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from headstart.heads import HEADS, LinearHead, MLPHead, make_head

FAST = {"mlp": {"hidden": 64, "dropout": 0.5, "max_epochs": 30}}


@pytest.fixture
def digits(digit_features):
    return digit_features


@pytest.mark.parametrize("kind", list(HEADS))
def test_estimator_contract(kind: str, digits) -> None:
    xtr, xte, ytr, yte = digits
    head = make_head(kind, random_state=0, **FAST.get(kind, {}))
    assert not [a for a in vars(head) if a.endswith("_")]  # __init__ only stores parameters
    clone(head).fit(xtr, ytr)
    head.fit(xtr, ytr)
    proba = head.predict_proba(xte)
    assert proba.shape == (len(xte), 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    assert set(head.predict(xte)) <= set(head.classes_)
    assert head.score(xte, yte) > 0.9
    assert list(head.classes_) == sorted(set(ytr))


def test_linear_head_matches_sklearn_logistic_regression(digits) -> None:
    xtr, xte, ytr, yte = digits
    ours = LinearHead(C=0.5).fit(xtr, ytr)
    ref = make_pipeline(StandardScaler(), LogisticRegression(C=0.5, max_iter=1000)).fit(xtr, ytr)
    assert abs(ours.score(xte, yte) - ref.score(xte, yte)) <= 0.005
    np.testing.assert_allclose(ours.predict_proba(xte), ref.predict_proba(xte), atol=1e-3)


@pytest.mark.parametrize(("n_classes", "scaling"), [(5, "standard"), (2, "none"), (4, "l2")])
def test_tuning_fits_in_the_row_space_give_scikit_learns_models(n_classes: int, scaling: str) -> None:
    """With fewer items than features the tuning path fits in the items' row space (`row_space`): every C's
    probabilities are those of scikit-learn's solver on every feature."""
    from headstart.heads.base import apply_scaling, scaling_stats
    from headstart.heads.linear import row_space

    rng = np.random.default_rng(n_classes)
    y = np.arange(40) % n_classes
    x = (rng.normal(size=(40, 600)) + 0.3 * rng.normal(size=(n_classes, 600))[y]).astype(np.float32)
    basis = row_space(x)
    assert basis is not None and basis.shape == (40, 600)
    np.testing.assert_allclose(basis @ basis.T, np.eye(40), atol=1e-8)  # orthonormal
    np.testing.assert_allclose(x @ basis.T @ basis, x, atol=1e-4)  # and nothing of the items is lost
    assert row_space(x[:, :60]) is None  # features not twice the items: fitted as they are
    stats = scaling_stats(x, scaling)
    x_new = rng.normal(size=(30, 600)).astype(np.float32)
    xs, xs_new = apply_scaling(x, *stats), apply_scaling(x_new, *stats)
    head = LinearHead(tol=1e-10, max_iter=5000)
    head.classes_ = np.arange(n_classes)
    cs = [0.01, 1.0, 10.0]
    probas = head._path(xs, y, xs_new, cs, scaling, np.ones(n_classes))
    for c in cs:
        ref = LogisticRegression(C=c, tol=1e-10, max_iter=5000).fit(xs.astype(np.float64), y)
        np.testing.assert_allclose(probas[f"C={c},scaling={scaling}"], ref.predict_proba(xs_new), atol=1e-5)


def test_binary_head_has_two_columns() -> None:
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(-2, 1, (30, 3)), rng.normal(2, 1, (30, 3))]
    y = np.array(["neg"] * 30 + ["pos"] * 30)
    head = LinearHead().fit(x, y)
    assert head.predict_proba(x).shape == (60, 2) and head.score(x, y) > 0.95


def test_works_in_pipeline_and_grid_search(digits) -> None:
    xtr, xte, ytr, yte = digits
    search = GridSearchCV(make_pipeline(StandardScaler(), LinearHead()), {"linearhead__C": [0.1, 1.0]}, cv=2)
    search.fit(xtr, ytr)
    assert search.best_params_["linearhead__C"] in (0.1, 1.0) and search.score(xte, yte) > 0.9


def test_class_weight_balanced_raises_recall_of_the_rare_class() -> None:
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(0, 1, (300, 2)), rng.normal(1.2, 1, (15, 2))]
    y = np.array(["common"] * 300 + ["rare"] * 15)
    plain = LinearHead().fit(x, y)
    balanced = LinearHead(class_weight="balanced").fit(x, y)
    rare = y == "rare"
    assert (balanced.predict(x[rare]) == "rare").mean() > (plain.predict(x[rare]) == "rare").mean()


@pytest.mark.parametrize("kind", list(HEADS))
def test_state_round_trip(kind: str, digits) -> None:
    xtr, xte, ytr, _ = digits
    head = make_head(kind, random_state=0, **FAST.get(kind, {})).fit(xtr, ytr)
    again = HEADS[kind].from_state(head.fitted_params(), list(head.classes_), head.state_tensors())
    np.testing.assert_allclose(head.predict_proba(xte), again.predict_proba(xte), atol=1e-6)


def test_mlp_has_the_classic_shape_and_early_stops(digits) -> None:
    xtr, _, ytr, _ = digits
    head = MLPHead(hidden=1024, dropout=0.5, max_epochs=200, patience=3).fit(xtr[:300], ytr[:300])
    core = head.module_[1]
    assert core[0].out_features == 1024 and isinstance(core[2], __import__("torch").nn.Dropout)
    assert head.n_epochs_ < 200


def test_bad_features_are_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="NaN"):
        LinearHead().fit(np.array([[np.nan, 1.0], [0.0, 1.0]]), ["a", "b"])
    with pytest.raises(ValueError, match="at least 2 classes"):
        LinearHead().fit(np.ones((4, 2)), ["a"] * 4)
    with pytest.raises(ValueError, match="one class"):
        LinearHead().fit(np.ones((4, 2)), ["a"] * 4)
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        LinearHead().fit(np.eye(4), [0.1, 0.7, 0.2, 1.5])
    with pytest.raises(NotFittedError):
        LinearHead().predict(np.eye(4))
    head = LinearHead().fit(np.eye(4), ["a", "b", "a", "b"])
    with pytest.raises(ValueError, match="X has 3 features, but LinearHead is expecting 4 features"):
        head.predict(np.ones((1, 3)))
    with pytest.raises(ValueError, match="Reshape your data"):
        head.predict(np.ones(4))


def test_binary_decision_function_follows_scikit_learn() -> None:
    """Two classes: one score per item, positive for `classes_[1]`, as scikit-learn's classifiers give it."""
    rng = np.random.default_rng(0)
    x = np.r_[rng.normal(-2, 1, (30, 3)), rng.normal(2, 1, (30, 3))]
    y = np.array(["neg"] * 30 + ["pos"] * 30)
    head = LinearHead(C=1.0, scaling="none").fit(x, y)
    score = head.decision_function(x)
    assert score.shape == (60,)
    np.testing.assert_array_equal(np.where(score > 0, "pos", "neg"), head.predict(x))
    ref = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    np.testing.assert_allclose(score, ref.decision_function(x), rtol=1e-3, atol=1e-3)
    assert head.logits(x).shape == (60, 2)


def test_linear_head_chooses_regularisation_and_scaling_by_cross_validation(digits) -> None:
    xtr, xte, ytr, yte = digits
    head = LinearHead().fit(xtr[:400], ytr[:400])
    chosen = head.chosen_
    assert chosen["C"] in (0.001, 0.01, 0.1, 1.0, 10.0, 100.0) and chosen["scaling"] in ("standard", "l2", "none")
    assert "cross-validation" in chosen["by"] and len(head.cv_results_) == 18
    # the chosen setting is the one scikit-learn gives when asked for it directly
    fixed = LinearHead(C=chosen["C"], scaling=chosen["scaling"]).fit(xtr[:400], ytr[:400])
    np.testing.assert_allclose(head.predict_proba(xte), fixed.predict_proba(xte), atol=1e-6)
    assert head.fitted_params()["C"] == chosen["C"] and head.get_params()["C"] == "auto"


def test_tuned_linear_head_is_not_worse_than_scikit_learn_default_on_few_labels() -> None:
    """The default candidate stays unless cross-validation shows a clearly better one, so with a handful of labels
    the tuned head scores as scikit-learn's LogisticRegression() does, on raw features of very different scales."""
    rng = np.random.default_rng(1)
    centers = rng.normal(size=(4, 20)) * np.r_[np.full(10, 0.05), np.full(10, 30.0)]
    x = np.concatenate([c + rng.normal(size=(60, 20)) * np.r_[np.full(10, 0.05), np.full(10, 30.0)] for c in centers])
    y = np.repeat(np.array(list("abcd")), 60)
    train = np.r_[[np.flatnonzero(y == c)[:5] for c in "abcd"]].ravel()
    test = np.setdiff1d(np.arange(len(y)), train)
    ours = LinearHead().fit(x[train], y[train]).score(x[test], y[test])
    ref = LogisticRegression(max_iter=1000).fit(x[train], y[train]).score(x[test], y[test])
    assert ours >= ref - 0.02


def test_l2_scaling_is_inside_the_saved_head() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 6)) * rng.uniform(0.1, 50, size=(40, 1))  # rows of very different lengths
    y = np.array(["a", "b"] * 20)
    head = LinearHead(C=1.0, scaling="l2").fit(x, y)
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    ref = LogisticRegression(C=1.0, max_iter=1000).fit(StandardScaler().fit_transform(unit), y)
    expected = ref.predict_proba(StandardScaler().fit(unit).transform(unit))
    np.testing.assert_allclose(head.predict_proba(x), expected, atol=1e-3)
    again = LinearHead.from_state(head.fitted_params(), list(head.classes_), head.state_tensors())
    np.testing.assert_allclose(again.predict_proba(x * 7.0), head.predict_proba(x), atol=1e-5)  # length-free


def test_part_scaling_weighs_each_part_by_its_rows_mean_length() -> None:
    """Features of two parts side by side (an encoder's and TF-IDF rows): each part is divided by its rows' mean
    length, so a part in large units does not drown the other; the scaling travels with the saved head."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(60, 4)) * 40.0, rng.normal(size=(60, 3))
    x, y = np.hstack([a, b]), np.array(["p", "q", "r"] * 20)
    head = LinearHead(C=1.0, scaling="parts", parts=[4, 3]).fit(x, y)
    lengths = np.linalg.norm(a, axis=1).mean(), np.linalg.norm(b, axis=1).mean()
    np.testing.assert_allclose(head.scale_, np.r_[[lengths[0]] * 4, [lengths[1]] * 3], rtol=1e-5)
    scaled = np.hstack([a / lengths[0], b / lengths[1]])
    ref = LogisticRegression(C=1.0, max_iter=1000).fit(scaled, y)
    np.testing.assert_allclose(head.predict_proba(x), ref.predict_proba(scaled), atol=1e-3)
    again = LinearHead.from_state(head.fitted_params(), list(head.classes_), head.state_tensors())
    assert again.fitted_params()["parts"] == [4, 3]
    np.testing.assert_allclose(again.predict_proba(x), head.predict_proba(x), atol=1e-6)
    with pytest.raises(ValueError, match="parts' widths, summing to 7"):
        LinearHead(C=1.0, scaling="parts", parts=[4, 4]).fit(x, y)


def test_heads_saved_before_l2_scaling_still_load(digits) -> None:
    xtr, xte, ytr, _ = digits
    head = LinearHead(C=1.0, scaling="standard").fit(xtr, ytr)
    old = {k: v for k, v in head.state_tensors().items() if k != "0.l2"}
    again = LinearHead.from_state({"C": 1.0}, list(head.classes_), old)
    np.testing.assert_allclose(again.predict_proba(xte), head.predict_proba(xte), atol=1e-6)


def test_mlp_head_chooses_its_size_and_dropout(digits) -> None:
    xtr, xte, ytr, yte = digits
    head = MLPHead(max_epochs=20, random_state=0).fit(xtr[:200], ytr[:200])
    assert head.chosen_["hidden"] in (256, 1024) and head.chosen_["dropout"] in (0.2, 0.5)
    assert head.module_[1][0].out_features == head.chosen_["hidden"] and len(head.cv_results_) == 4
    again = MLPHead.from_state(head.fitted_params(), list(head.classes_), head.state_tensors())
    np.testing.assert_allclose(again.predict_proba(xte), head.predict_proba(xte), atol=1e-6)
    assert head.score(xte, yte) > 0.8


def test_a_refit_keeps_nothing_of_the_earlier_fit(digits) -> None:
    xtr, xte, ytr, _ = digits
    head = LinearHead(cv=3).fit(xtr[:300], ytr[:300])
    assert len(head.cv_results_) == 18 and "cross-validation" in head.chosen_["by"]
    head.set_params(C=1.0, scaling="standard").fit(xtr[:300], ytr[:300])
    assert not hasattr(head, "cv_results_") and head.chosen_ == {} and (head.C_, head.scaling_) == (1.0, "standard")
    fresh = LinearHead(C=1.0, scaling="standard", cv=3).fit(xtr[:300], ytr[:300])
    np.testing.assert_array_equal(head.predict_proba(xte), fresh.predict_proba(xte))


def test_augmented_copies_do_not_leak_into_the_heads_own_cross_validation() -> None:
    """Labels that are noise, each item followed by two near-copies: folds that split an item from its copies
    score the memorising head at nearly 100%; folds that keep groups whole score it at chance, as a new item would."""
    rng = np.random.default_rng(0)
    items = rng.normal(size=(60, 200)).astype(np.float32)
    y_items = rng.integers(0, 3, size=60)
    x = np.concatenate(
        [items, items + 0.01 * rng.normal(size=items.shape), items + 0.01 * rng.normal(size=items.shape)]
    )
    y, groups = np.tile(y_items, 3), np.tile(np.arange(60), 3)
    leaky = LinearHead(random_state=0).fit(x, y)
    grouped = LinearHead(random_state=0).fit(x, y, groups=groups)
    assert leaky.chosen_["cv_accuracy"] > 0.9
    assert grouped.chosen_["cv_accuracy"] < 0.55
    with pytest.raises(ValueError, match="one id per row: 60 ids for 180 rows"):
        LinearHead().fit(x, y, groups=groups[:60])


def test_a_tuning_is_remembered_for_the_same_head_and_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(1)
    y = np.arange(60) % 3
    x = (rng.normal(size=(60, 20)) + rng.normal(size=(3, 20))[y]).astype(np.float32)
    calls = []
    real_path = LinearHead._path
    monkeypatch.setattr(LinearHead, "_path", lambda self, *a: calls.append(1) or real_path(self, *a))
    first = LinearHead(random_state=7).fit(x, y)
    n_fold_paths = len(calls)
    assert n_fold_paths > 0
    again = LinearHead(random_state=7).fit(x.copy(), y.copy())
    assert len(calls) == n_fold_paths and again.chosen_ == first.chosen_  # same rows and settings: remembered
    np.testing.assert_array_equal(again.predict_proba(x), first.predict_proba(x))
    LinearHead(random_state=8).fit(x, y)  # other folds
    LinearHead(random_state=7).fit(x[:-3], y[:-3])  # other rows
    LinearHead(random_state=7).fit(x, y, groups=np.arange(60) // 2)  # other groups
    assert len(calls) == 4 * n_fold_paths


def test_mlp_early_stopping_holds_out_whole_items_with_their_copies() -> None:
    """Noise labels, each item followed by two near-copies. A validation slice drawn by rows holds copies of what
    trains, so its loss keeps falling while the network memorises; drawn by groups, it holds new items only, and
    the loss turns up at once (labels are noise) and training stops early."""
    rng = np.random.default_rng(0)
    items = rng.normal(size=(120, 64)).astype(np.float32)
    y_items = np.arange(120) % 3
    x = np.concatenate([items + 0.01 * rng.normal(size=items.shape).astype(np.float32) for _ in range(3)])
    y, groups = np.tile(y_items, 3), np.tile(np.arange(120), 3)

    train_rows, val_rows = MLPHead(random_state=0)._holdout(y, groups)
    val_groups, train_groups = set(groups[val_rows.numpy()]), set(groups[train_rows.numpy()])
    assert not val_groups & train_groups and len(val_groups) == 18  # 15% of 120 items, each with both copies
    assert np.bincount(y_items[sorted(val_groups)]).tolist() == [6, 6, 6]  # stratified by class
    assert len(val_rows) + len(train_rows) == 360

    settings = {"hidden": 256, "dropout": 0.2, "max_epochs": 100, "patience": 5, "random_state": 0}
    leaky = MLPHead(**settings).fit(x, y)
    grouped = MLPHead(**settings).fit(x, y, groups=groups)
    assert grouped.n_epochs_ < leaky.n_epochs_ / 2, (grouped.n_epochs_, leaky.n_epochs_)


def _speakers(seed: int, n_speakers: int, first: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """3 classes said by each speaker: a weak signal shared by all speakers, and a strong one private to each."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(size=(3, 60))
    xs, ys, gs = [], [], []
    for s in range(n_speakers):
        own = 3.0 * rng.normal(size=(3, 60))
        for c in range(3):
            xs.append(own[c] + 0.4 * shared[c] + 0.3 * rng.normal(size=(8, 60)))
            ys += [c] * 8
            gs += [s] * 8
    x, y, g = np.concatenate(xs).astype(np.float32), np.array(ys), np.array(gs)
    return x[g >= first], y[g >= first], g[g >= first]


def test_speaker_groups_make_the_heads_estimate_one_of_new_speakers() -> None:
    """Folds by row score what a speaker said from the same speaker's other items (nearly 100%); folds by speaker
    score it as the held-out speakers score the head, far lower."""
    x, y, speakers = _speakers(0, 12)
    x_new, y_new, _ = _speakers(0, 24, first=12)  # the same shared signal, 12 speakers never heard
    by_row = LinearHead(random_state=0).fit(x, y)
    by_speaker = LinearHead(random_state=0).fit(x, y, groups=speakers)
    truth = by_speaker.score(x_new, y_new)
    assert by_row.chosen_["cv_accuracy"] > 0.95 and truth < 0.7
    assert abs(by_speaker.chosen_["cv_accuracy"] - truth) < 0.2


def test_mlp_early_stopping_holds_out_whole_speakers() -> None:
    _, y, speakers = _speakers(0, 12)
    train_rows, val_rows = MLPHead(random_state=0)._holdout(y, speakers)
    assert not set(speakers[val_rows.numpy()]) & set(speakers[train_rows.numpy()])
    assert len(set(speakers[val_rows.numpy()])) in (1, 2) and set(y[val_rows.numpy()]) == {0, 1, 2}
    assert len(val_rows) + len(train_rows) == len(y)
    _, none = MLPHead(random_state=0)._holdout(y, speakers % 4)  # 4 speakers: too few for a 15% slice of them
    assert none is None


def test_mostly_zero_rows_reach_the_solver_sparse_with_the_same_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """TF-IDF-like rows (large, 1% non-zero) go to scikit-learn's solver as compressed rows: the same C chosen and
    the same probabilities as on the dense matrix."""
    from scipy.sparse import issparse

    from headstart.heads import linear, tuning

    big = (np.random.default_rng(1).random((300, 4000)) < 0.01).astype(np.float32)
    assert issparse(linear.sparse_if_mostly_zero(big)) and not issparse(linear.sparse_if_mostly_zero(big[:10]))
    assert not issparse(linear.sparse_if_mostly_zero(np.ones((300, 4000))))

    monkeypatch.setattr(linear, "SPARSE_FROM", 10_000)  # a small matrix, more rows than half its columns: no basis
    rng = np.random.default_rng(0)
    y = np.array(["a", "b", "c"] * 100)
    x = (rng.random((300, 400)) < 0.01) * rng.random((300, 400))
    x[np.arange(300), np.searchsorted(["a", "b", "c"], y)] += rng.random(300)  # a signal, not a perfect one
    seen = []
    real_fit = LogisticRegression.fit

    def fit(self, a, *rest, **kw):
        seen.append(issparse(a))
        return real_fit(self, a, *rest, **kw)

    monkeypatch.setattr(LogisticRegression, "fit", fit)
    sparse = LinearHead(scaling="none").fit(x, y)
    assert len(seen) > 6 and all(seen)  # the tuning's path of C in every fold, and the final fit
    monkeypatch.setattr(linear, "SPARSE_BELOW", 0.0)
    monkeypatch.setattr(tuning, "_remembered", type(tuning._remembered)())  # tune again, not from memory
    seen.clear()
    dense = LinearHead(scaling="none").fit(x, y)
    assert len(seen) > 6 and not any(seen)
    assert sparse.C_ == dense.C_
    np.testing.assert_allclose(sparse.predict_proba(x), dense.predict_proba(x), atol=1e-3)


def test_sparse_rows_in_give_the_model_of_their_dense_rows() -> None:
    """A linear head given scipy sparse rows (TF-IDF, alone or beside dense features) keeps them sparse through its
    tuning and fit when its scaling only divides columns ("none", "parts"), and learns what it learns from the same
    rows dense; a scaling that centres the columns gets dense rows; scoring sparse rows equals scoring dense ones."""
    from scipy.sparse import csr_matrix, issparse

    from headstart.heads import base
    from headstart.heads.base import apply_scaling, scaling_stats

    rng = np.random.default_rng(0)
    y = np.array(["a", "b", "c"] * 60)
    x = (rng.random((180, 200)) < 0.03) * rng.random((180, 200))  # more rows than half the columns: no basis
    x[np.arange(180), np.searchsorted(["a", "b", "c"], y)] += rng.random(180)
    x = np.hstack([rng.normal(size=(180, 8)) * 5, x]).astype(np.float32)  # dense features beside sparse rows
    for params in ({"scaling": "none"}, {"scaling": "parts", "parts": [8, 200]}, {"scaling": "standard", "C": 1.0}):
        stats = scaling_stats(csr_matrix(x), params["scaling"], params.get("parts"))
        np.testing.assert_allclose(stats[2], scaling_stats(x, params["scaling"], params.get("parts"))[2], rtol=1e-5)
        from_sparse = LinearHead(random_state=0, **params).fit(csr_matrix(x), y)
        from_dense = LinearHead(random_state=0, **params).fit(x, y)
        assert from_sparse.C_ == from_dense.C_
        # the same solution to the solver's tolerance (weakly regularised here: C=10-100)
        np.testing.assert_allclose(from_sparse.predict_proba(csr_matrix(x)), from_dense.predict_proba(x), atol=1e-2)
        assert (from_sparse.predict(csr_matrix(x)) == from_dense.predict(x)).all()
        kept = issparse(apply_scaling(csr_matrix(x), *stats))
        assert kept == (params["scaling"] != "standard")
    # a linear head scores sparse rows without making them dense (standardised ones too: the mean moves to the bias)
    np.testing.assert_allclose(from_dense.logits(csr_matrix(x)), from_dense.logits(x), rtol=1e-4, atol=1e-4)
    mlp = MLPHead(hidden=8, dropout=0.0, max_epochs=5, random_state=0).fit(x, y)
    old = base.LOGIT_BLOCK
    try:
        base.LOGIT_BLOCK = 7  # others are scored a block at a time: blocks that do not divide the rows
        np.testing.assert_allclose(mlp.logits(csr_matrix(x)), mlp.logits(x), rtol=1e-5, atol=1e-5)
    finally:
        base.LOGIT_BLOCK = old
