"""`auto` on text: a sentence encoder's features beside TF-IDF rows, the TF-IDF refitted in every fold, chosen when
it beats both and saved as one model (`concat:ENCODER + features:tfidf?...`) that predicts from raw texts."""

from __future__ import annotations

import json

import numpy as np
import pytest

import headstart as hs
from headstart.data import from_arrays


def two_signals(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Four classes, each the pair of two signals that only one side reads: a one-letter word repeated at the start
    (TF-IDF's tokens are two letters or more, so only the encoder sees it) and a word, three times, after 50 shared
    ones (past the encoder's 64 tokens, so only TF-IDF sees it)."""
    rng = np.random.default_rng(seed)
    filler = "the a market film music award star election minister vote party phone software".split()
    texts, labels = [], []
    for i in range(n):
        letter, word = "xy"[i % 2], ["goal", "bank"][(i // 2) % 2]
        texts.append(" ".join([*[letter] * 24, *rng.choice(filler, 50), *[word] * 3]))
        labels.append(f"{letter}-{word}")
    return texts, labels


@pytest.fixture(scope="module")
def joined_auto(tiny_st_dir, tmp_path_factory):
    texts, labels = two_signals(96, seed=0)
    out = tmp_path_factory.mktemp("joined") / "model"
    model = hs.fit(from_arrays(texts, labels), backbone=f"st:{tiny_st_dir}", strategy="auto", out=out, progress=False)
    return model, out


def test_joined_features_win_where_each_side_reads_half(joined_auto, tiny_st_dir) -> None:
    model, _ = joined_auto
    rows = {r["name"]: r for r in model.report["leaderboard"]}
    joined = rows[f"st:{tiny_st_dir} ⊕ TF-IDF features + linear head"]
    alone = [rows["baseline: TF-IDF + logistic regression"], rows[f"st:{tiny_st_dir} + linear head"]]
    assert joined["folds"] == alone[0]["folds"] == alone[1]["folds"] == 15  # the same folds: 5, drawn 3 times
    assert all(r["cv_accuracy"] < 0.8 for r in alone)  # each side reads one of the two signals
    assert joined["cv_accuracy"] > 0.95 and joined["chosen"]
    assert model.backbone_spec.startswith(f"concat:st:{tiny_st_dir} + features:tfidf?")


def test_the_joined_model_saves_and_predicts_from_raw_texts(joined_auto) -> None:
    model, out = joined_auto
    manifest = json.loads((out / "headstart.json").read_text())
    assert manifest["backbone"]["spec"].startswith("concat:") and manifest["backbone"]["weights"]
    again = hs.load(out)
    texts, labels = two_signals(16, seed=1)  # texts neither model has seen
    np.testing.assert_allclose(again.predict_proba(texts), model.predict_proba(texts), atol=1e-6)
    assert again.backbone.parts[1].weights_id == model.backbone.parts[1].weights_id  # the loaded vocabulary's id
    assert np.mean(np.asarray(again.predict(texts)) == np.asarray(labels)) > 0.9
    assert model.data_info["n_train"] == 96  # refit on every label after scoring


def test_a_fold_never_sees_the_vocabulary_of_its_test_texts(tiny_st_dir) -> None:
    """Words that only the test part of a fold holds are not in that fold's TF-IDF: a candidate that fitted its
    vocabulary on every text would read them and score perfectly."""
    from headstart.autofit import Candidate, _fold_fitter
    from headstart.probe import JOINED_HEAD

    texts, labels = [], []
    for i in range(40):  # the label is a word of its own in each text: unseen by any other text
        labels.append("ab"[i % 2])
        texts.append(f"the film vote {'q' * 3}{i}{labels[-1] * 3}")
    ds = from_arrays(texts, labels)
    cand = Candidate("joined", "joined", f"st:{tiny_st_dir}", "linear", dict(JOINED_HEAD))
    common = {"seed": 0, "batch_size": 8, "progress": False, "class_weight": None}
    score = _fold_fitter(cand, ds, common, {})
    idx = np.arange(40)
    assert score(idx[idx % 4 != 0], idx[idx % 4 == 0]) < 0.9


def test_with_every_label_the_joined_model_quotes_out_of_fold_accuracy(tiny_st_dir) -> None:
    """`test_size=0`: the joined winner is scored on out-of-fold predictions (its TF-IDF refitted in each fold) and
    trained on every text."""
    texts, labels = two_signals(64, seed=2)
    model = hs.fit(from_arrays(texts, labels), backbone=f"st:{tiny_st_dir}", strategy="auto", test_size=0,
                   progress=False)  # fmt: skip
    assert model.backbone_spec.startswith(f"concat:st:{tiny_st_dir} + features:tfidf?")
    assert "cross-validat" in model.report["accuracy_from"] and model.data_info["n_train"] == 64
    assert model.report["tasks"]["label"]["accuracy"] > 0.9
