"""`strategy="auto"`: candidates compared on the same folds, the baseline among them, the best refit and saved."""

from __future__ import annotations

import json

import numpy as np
import pytest

import headstart as hs
from headstart.data import from_arrays
from headstart.errors import DataError


@pytest.fixture(scope="module")
def auto_digits(digits_small, tmp_path_factory):
    images, labels = digits_small
    out = tmp_path_factory.mktemp("auto") / "digits"
    model = hs.fit(from_arrays(images, labels), backbone="headstart:tiny-cnn", strategy="auto", out=out, progress=False)
    return model, out


def test_leaderboard_holds_the_baseline_and_marks_the_best(auto_digits) -> None:
    model, out = auto_digits
    rows = model.report["leaderboard"]
    names = [r["name"] for r in rows]
    assert names[0] == "baseline: raw pixels + logistic regression"
    assert "headstart:tiny-cnn + linear head" in names
    assert "headstart:tiny-cnn + MLP head" not in names  # 90 training items: below MLP_FROM
    assert any(n.startswith("headstart:tiny-cnn ⊕ baseline features") for n in names)
    scored = [r for r in rows if r["cv_accuracy"] is not None]
    chosen = [r for r in rows if r["chosen"]]
    best = max(r["cv_accuracy"] for r in scored)
    default = next(r for r in rows if r["name"] == "headstart:tiny-cnn + linear head")
    # on 8x8 digits raw pixels beat a random tiny CNN clearly (about 0.92 against 0.75 here): the baseline is chosen
    assert len(chosen) == 1 and chosen[0]["name"] == names[0] and chosen[0]["cv_accuracy"] == best
    assert best > default["cv_accuracy"] + 0.05 and not default["chosen"]
    assert not [r for r in rows if "not clearly better" in r["note"]]  # the best was chosen: nothing to explain
    assert {r["folds"] for r in scored} == {15}  # the same folds for every candidate: 5, drawn 3 times (90 items)
    costly = next(r for r in rows if r["name"] == "headstart:tiny-cnn finetune")
    assert costly["cv_accuracy"] is None and "time-budget" in costly["note"]
    assert model.report["chosen"] == chosen[0]["name"]
    assert (out / "leaderboard.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((out / "report.json").read_text())
    assert saved["leaderboard_png"] == "leaderboard.png" and len(saved["leaderboard"]) == len(rows)


def test_the_saved_winner_predicts_as_the_fitted_one(auto_digits, digits_small) -> None:
    model, out = auto_digits
    images, _ = digits_small
    again = hs.load(out)
    assert again.backbone_spec == model.backbone_spec
    np.testing.assert_allclose(again.predict_proba(list(images[:8])), model.predict_proba(list(images[:8])), atol=1e-5)
    assert model.data_info["n_train"] == 120  # refit on every label after scoring


def test_baseline_features_saved_as_a_model_round_trip(digits_small, tmp_path) -> None:
    """The baseline as a model (raw pixels + logistic regression) saves and predicts like any other."""
    images, labels = digits_small
    model = hs.fit(
        from_arrays(images, labels),
        backbone="features:pixels?mode=L&side=8",
        head_params={"C": 0.1, "scaling": "standard"},
        out=tmp_path / "pixels",
        progress=False,
    )
    base = model.report["tasks"]["label"]["baseline"]["accuracy"]
    assert abs(model.report["tasks"]["label"]["accuracy"] - base) < 1e-9  # the same recipe as the baseline line
    again = hs.load(tmp_path / "pixels")
    assert again.predict(list(images[:10])) == model.predict(list(images[:10]))


def test_text_auto_can_choose_and_save_tf_idf(tmp_path, tiny_st_dir) -> None:
    rng = np.random.default_rng(0)
    filler = "the a market film music award star election minister vote party phone software".split()
    labels = ["sport", "business"] * 40
    # the one word that tells the classes apart comes after 80 shared ones: TF-IDF reads it, the encoder (64 tokens
    # at most) never sees it
    texts = [" ".join([*rng.choice(filler, 80), "goal" if y == "sport" else "bank"]) for y in labels]
    model = hs.fit(
        from_arrays(texts, labels), backbone=f"st:{tiny_st_dir}", strategy="auto", out=tmp_path / "t", progress=False
    )
    names = [r["name"] for r in model.report["leaderboard"]]
    assert names[0] == "baseline: TF-IDF + logistic regression"
    assert any("setfit" in n for n in names)
    # the encoder reads little here: a recipe that reads TF-IDF must win clearly and be the saved model (the TF-IDF
    # baseline, or the encoder's features beside TF-IDF rows, which read the same word)
    rows = {r["name"]: r for r in model.report["leaderboard"]}
    chosen = rows[model.report["chosen"]]
    assert chosen["cv_accuracy"] > rows[f"st:{tiny_st_dir} + linear head"]["cv_accuracy"] + 0.1
    assert chosen["cv_accuracy"] == max(r["cv_accuracy"] or 0 for r in rows.values())
    tfidf = "features:tfidf" if chosen["name"] == names[0] else f"concat:st:{tiny_st_dir} + features:tfidf"
    assert chosen["name"] in (names[0], f"st:{tiny_st_dir} ⊕ TF-IDF features + linear head")
    assert model.backbone_spec.startswith(tfidf)
    again = hs.load(tmp_path / "t")
    assert again.predict(["the film vote phone goal", "the music party star bank"]) == ["sport", "business"]
    # what `fit`'s default may save is served like any model; export says why it cannot hold it, and what can
    from headstart.export import ExportError, export_onnx
    from headstart.serve.predictor import load_predictor

    served = load_predictor(tmp_path / "t").probabilities(["the film vote phone goal", "the music party star bank"])
    np.testing.assert_array_equal(served["label"].argmax(1), [1, 0])  # classes_ sorted: business, sport
    with pytest.raises(ExportError, match="--strategy probe"):
        export_onnx(tmp_path / "t", tmp_path / "onnx")


def test_several_backbones_need_auto(digits_small) -> None:
    images, labels = digits_small
    with pytest.raises(TypeError, match="several backbones need strategy='auto'"):
        hs.fit(from_arrays(images, labels), backbone=["headstart:tiny-cnn", "headstart:tiny-cnn?width=8"], head="mlp")


@pytest.mark.slow
def test_costly_candidates_run_within_the_time_budget(digits_small) -> None:
    images, labels = digits_small
    ds = from_arrays(images, labels)
    model = hs.fit(ds, backbone="headstart:tiny-cnn", strategy="auto", time_budget=900, epochs=1, progress=False)
    row = next(r for r in model.report["leaderboard"] if r["name"] == "headstart:tiny-cnn finetune")
    assert row["folds"] == 5 and row["cv_accuracy"] is not None and row["seconds"] > 0
    spent = hs.fit(ds, backbone="headstart:tiny-cnn", strategy="auto", time_budget=0.01, epochs=1, progress=False)
    row = next(r for r in spent.report["leaderboard"] if r["name"] == "headstart:tiny-cnn finetune")
    assert row["cv_accuracy"] is None and "time budget" in row["note"]


def test_choice_keeps_the_default_unless_clearly_beaten() -> None:
    from headstart.autofit import Candidate, choose

    default = Candidate("b + linear head", "probe", "b", fold_accuracy=[0.8, 0.6, 1.0, 0.8])
    lucky = Candidate("baseline", "probe", "x", fold_accuracy=[1.0, 0.6, 0.8, 1.0])  # +0.05 mean, noisy
    clear = Candidate("joined", "probe", "y", fold_accuracy=[0.9, 0.7, 1.0, 0.9])  # +0.075, every fold
    assert choose([lucky, default], default) is default
    assert choose([lucky, default, clear], default) is clear
    assert choose([lucky], None) is lucky


def test_fit_compares_recipes_unless_told_one(auto_digits, digits_small) -> None:
    """`fit` without a strategy is `auto` (the baseline is a candidate, so the default is not worse than it); a head
    names the probe's recipe; a class with a single training item is too few to compare on: the probe, said so."""
    images, labels = digits_small
    data = from_arrays(images, labels)
    default = hs.fit(data, backbone="headstart:tiny-cnn", progress=False)
    assert default.report["strategy"] == "auto" and default.report["chosen"] == auto_digits[0].report["chosen"]
    assert default.backbone_spec == auto_digits[0].backbone_spec  # the raw pixels, as the explicit auto chose
    probe = hs.fit(data, backbone="headstart:tiny-cnn", head="linear", progress=False)
    assert probe.report["strategy"] == "probe" and "leaderboard" not in probe.report
    assert probe.backbone_spec == "headstart:tiny-cnn"
    keep = np.flatnonzero(labels != "3").tolist() + [int(np.flatnonzero(labels == "3")[0])]  # a single "3"
    train, test = from_arrays(images[keep], labels[keep]), from_arrays(images[:30], labels[:30])
    lone = hs.fit(train, test=test, backbone="headstart:tiny-cnn", progress=False)
    assert lone.report["strategy"] == "probe" and "single training item" in lone.report["strategy_note"]
    with pytest.raises(TypeError, match="strategy='auto' compares heads and settings itself"):
        hs.fit(data, backbone="headstart:tiny-cnn", strategy="auto", head="mlp", progress=False)
    with pytest.raises(DataError, match="at least 2 labelled items per class"):  # asked for by name
        hs.fit(train, test=test, backbone="headstart:tiny-cnn", strategy="auto", progress=False)


def test_auto_joins_a_joined_backbone_with_the_baseline(digits_small) -> None:
    images, labels = digits_small
    joined = "concat:headstart:tiny-cnn + headstart:tiny-cnn?width=8"
    model = hs.fit(from_arrays(images, labels), backbone=joined, strategy="auto", progress=False)
    names = {r["name"]: r for r in model.report["leaderboard"]}
    row = names[f"{joined} ⊕ baseline features + linear head"]
    assert row["cv_accuracy"] is not None and row["spec"] == f"{joined} + features:pixels?mode=L&side=8"
