"""Every label counts: which items train the saved model, and where its quoted accuracy comes from."""

from __future__ import annotations

import numpy as np
import pytest

import headstart as hs
from headstart.data import from_arrays
from headstart.errors import DataError
from headstart.features import extract_features

FIXED = {"C": 1.0, "scaling": "standard"}  # fixed settings: the head's mean_ then tells which items it saw


def _features(images):
    from headstart.backbones import create_backbone

    return extract_features(create_backbone("headstart:tiny-cnn"), list(images), progress=False)


def test_saved_model_is_refit_on_every_label_after_scoring(digits_small) -> None:
    images, labels = digits_small
    ds = from_arrays(images, labels)
    model = hs.fit(ds, backbone="headstart:tiny-cnn", head_params=FIXED, progress=False)
    assert model.data_info["n_train"] == 120 and model.data_info["n_scored_train"] == 90
    assert model.report["tasks"]["label"]["n"] == 30 and model.data_info["estimate"] == "held-out split"
    assert model.report["trained_on"].startswith("all 120 labelled items")
    assert "held-out split of 30 items" in model.report["accuracy_from"]
    x = _features(images)
    np.testing.assert_allclose(model.heads["label"].mean_, x.mean(0), rtol=1e-4, atol=1e-5)

    kept = hs.fit(ds, backbone="headstart:tiny-cnn", head_params=FIXED, refit=False, progress=False)
    assert kept.data_info["n_train"] == 90
    assert not np.allclose(kept.heads["label"].mean_, x.mean(0), atol=1e-5)
    # the quoted accuracy is the same either way: it always comes from the model trained on the 90
    assert kept.report["tasks"]["label"]["accuracy"] == model.report["tasks"]["label"]["accuracy"]


def test_labels_per_class_simulation_trains_on_those_items_only(digits_small) -> None:
    images, labels = digits_small
    model = hs.fit(from_arrays(images, labels), backbone="headstart:tiny-cnn", labels_per_class=3, progress=False)
    assert model.data_info["n_train"] == 30 == model.data_info["n_scored_train"]
    assert model.report["trained_on"] == "30 labelled items of in-memory data"


def test_separate_test_set(digits_small) -> None:
    images, labels = digits_small
    train, test = from_arrays(images[::2], labels[::2]), from_arrays(images[1::2], labels[1::2])
    model = hs.fit(train, test=test, backbone="headstart:tiny-cnn", head_params=FIXED, progress=False)
    assert model.report["tasks"]["label"]["n"] == 60 == model.report["tasks"]["label"]["baseline"]["n"]
    assert model.data_info["n_train"] == 60 and "separate labelled set" in model.report["accuracy_from"]
    x = _features(images[::2])
    np.testing.assert_allclose(model.heads["label"].mean_, x.mean(0), rtol=1e-4, atol=1e-5)
    with pytest.raises(DataError, match="holds text data but"):
        hs.fit(train, test=from_arrays(["a b", "c d"], ["x", "y"]), backbone="headstart:tiny-cnn", progress=False)


def test_test_size_zero_trains_on_all_and_cross_validates(digits_small) -> None:
    images, labels = digits_small
    model = hs.fit(from_arrays(images, labels), backbone="headstart:tiny-cnn", test_size=0, progress=False)
    task = model.report["tasks"]["label"]
    assert task["n"] == 120 == task["baseline"]["n"]  # out-of-fold predictions for every item, both lines
    assert model.data_info["n_train"] == 120 and model.data_info["n_test"] == 0
    assert model.report["accuracy_from"].startswith("5-fold cross-validation (out-of-fold predictions)")
    assert task["accuracy"] > 0.3  # ten classes: chance is 0.1


def test_test_size_zero_needs_two_items_per_class(digits_small) -> None:
    images, labels = digits_small
    labels = labels.copy()
    labels[0] = "lonely"
    with pytest.raises(DataError, match="class 'lonely' in column 'label' .* has 1 item"):
        hs.fit(from_arrays(images, labels), backbone="headstart:tiny-cnn", test_size=0, progress=False)


def test_finetuning_refits_on_every_label_for_the_chosen_epochs(digits_small, tmp_path) -> None:
    images, labels = digits_small
    model = hs.fit(
        from_arrays(images, labels),
        backbone="headstart:tiny-cnn",
        strategy="finetune",
        epochs=2,
        batch_size=16,
        progress=False,
        out=tmp_path / "ft",
    )
    ft = model.report["finetune"]
    assert ft["refit_epochs"] == ft["best_epoch"] and model.data_info["n_train"] == 120
    assert model.report["trained_on"].startswith("all 120 labelled items given, retrained")
    again = hs.load(tmp_path / "ft")
    assert again.predict(list(images[:4])) == model.predict(list(images[:4]))


def test_no_refit_keeps_the_scored_fine_tuned_model(digits_small) -> None:
    images, labels = digits_small
    model = hs.fit(
        from_arrays(images, labels), backbone="headstart:tiny-cnn", strategy="finetune", epochs=1, batch_size=16,
        refit=False, progress=False,
    )  # fmt: skip
    assert model.report["finetune"]["refit_epochs"] is None and "timing_s" in model.report
    assert "refit" not in model.report["timing_s"] and model.data_info["n_train"] == model.data_info["n_scored_train"]
