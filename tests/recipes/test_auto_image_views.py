"""`auto`'s image candidate "linear head on augmented copies": a mirror image and two random crops of each training
image, the same copies for an image in any subset (so folds read them from the feature cache), scored on the same
folds as the others, and, when chosen, the saved model's head learned from them."""

from __future__ import annotations

import numpy as np
import pytest

import headstart as hs
from headstart.data import from_arrays


def test_copies_are_a_mirror_and_crops_the_same_in_any_subset(digits_small) -> None:
    from headstart.features.augmented import IMAGE_COPIES, image_copies

    images, labels = digits_small
    ds = from_arrays(images[:12], labels[:12])
    views = image_copies(None, ds, seed=3)
    n = len(ds)
    assert len(views) == IMAGE_COPIES * n and views.targets["label"] == list(labels[:12]) * IMAGE_COPIES
    rgb = [np.stack([im] * 3, axis=-1) for im in images[:12]]  # the digits are grey: copies come back RGB
    for i in range(n):
        np.testing.assert_array_equal(views.items[i], rgb[i][:, ::-1])  # copy 0: the mirror image
        for copy in (1, 2):
            crop = views.items[copy * n + i]
            assert crop.shape == rgb[i].shape and crop.dtype == np.uint8
    assert sum(not np.array_equal(views.items[n + i], rgb[i]) for i in range(n)) >= n - 2  # crops change the image
    assert not np.array_equal(views.items[n], views.items[2 * n])  # the two crops differ
    subset = image_copies(None, ds.subset(np.array([7, 2, 9])), seed=3)
    for j, i in enumerate((7, 2, 9)):  # an image's copies do not depend on which others are in the data
        for copy in range(IMAGE_COPIES):
            np.testing.assert_array_equal(subset.items[copy * 3 + j], views.items[copy * n + i])
    other_seed = image_copies(None, ds, seed=4)
    assert not all(np.array_equal(a, b) for a, b in zip(other_seed.items[n:], views.items[n:]))


def test_training_views_of_images_only_when_asked(digits_small) -> None:
    from headstart.backbones import create_backbone
    from headstart.features.augmented import training_views

    images, labels = digits_small
    ds = from_arrays(images[:10], labels[:10])
    bb = create_backbone("headstart:tiny-cnn")
    x, y = training_views(bb, ds, seed=0)
    assert x.shape == (0, bb.embed_dim) and y == {"label": []}
    x, y = training_views(bb, ds, seed=0, image_views=True)
    assert x.shape == (30, bb.embed_dim) and y["label"] == list(labels[:10]) * 3


@pytest.fixture(scope="module")
def auto_views(digits_small, tmp_path_factory):
    from headstart import autofit

    images, labels = digits_small
    ds = from_arrays(images, labels)
    real_choose = autofit.choose

    def choose_views(scored, default):  # the candidate chosen whatever its score: what its saved model holds
        real_choose(scored, default)
        return next(c for c in scored if c.image_views)

    mp = pytest.MonkeyPatch()
    mp.setattr(autofit, "choose", choose_views)
    try:
        out = tmp_path_factory.mktemp("views") / "m"
        model = hs.fit(ds, backbone="headstart:tiny-cnn", strategy="auto", out=out, progress=False)
    finally:
        mp.undo()
    return model, out, ds


def test_the_candidate_is_scored_on_the_same_folds(auto_views) -> None:
    model, _, _ = auto_views
    rows = {r["name"]: r for r in model.report["leaderboard"]}
    views = rows["headstart:tiny-cnn + linear head on augmented copies"]
    plain = rows["headstart:tiny-cnn + linear head"]
    assert views["folds"] == plain["folds"] == 15 and views["cv_accuracy"] is not None
    assert views["cv_accuracy"] != plain["cv_accuracy"]  # its heads learned from other rows


def test_the_chosen_candidates_model_learned_from_the_copies(auto_views, digits_small) -> None:
    from headstart.probe import fit_probe
    from headstart.runs import partition

    model, out, ds = auto_views
    assert model.report["chosen"] == "headstart:tiny-cnn + linear head on augmented copies"
    assert "mirror image" in model.report["augmented_copies"]
    part = partition(ds, test_size=0.25, seed=0)
    common = {"seed": 0, "progress": False, "baseline": False}
    plain = fit_probe(ds, part, backbone="headstart:tiny-cnn", **common)
    views = fit_probe(ds, part, backbone="headstart:tiny-cnn", image_views=True, **common)
    images, _ = digits_small
    probe = list(images[:20])
    np.testing.assert_allclose(model.predict_proba(probe), views.predict_proba(probe), atol=1e-5)
    assert not np.allclose(views.predict_proba(probe), plain.predict_proba(probe), atol=1e-3)
    again = hs.load(out)
    np.testing.assert_allclose(again.predict_proba(probe), model.predict_proba(probe), atol=1e-5)
