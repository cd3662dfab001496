"""`rank`: every backbone gets every score that applies, the order follows the chosen score, few labels work,
and the source classifier's logits go through the feature cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

import headstart as hs
from headstart.data import from_arrays
from headstart.errors import DataError
from headstart.features import FeatureCache
from headstart.features.source import extract_source_logits
from headstart.select.ranking import DEFAULT_SCORES, rank
from tests.conftest import TIMM_TINY, digit_images
from tests.select.helpers import noise_encoder, with_source_classifier


@pytest.fixture(scope="module")
def data():
    images, labels = digit_images(12, seed=0)
    return from_arrays(images, labels)


@pytest.fixture(scope="module")
def ranking(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("rank")
    candidates = ["headstart:tiny-cnn?size=16", with_source_classifier(), noise_encoder()]
    return rank(data, candidates, progress=False, out=out), out


def test_every_backbone_gets_every_score_that_applies(ranking) -> None:
    result, _ = ranking
    specs = {"headstart:tiny-cnn?size=16", "test:tiny-cnn-with-head?seed=0", "test:noise"}
    assert {r.spec for r in result.results} == specs
    for r in result.results:
        assert list(r.scores) == list(DEFAULT_SCORES)
        assert r.source_classifier == r.spec.startswith("test:tiny-cnn-with-head")
        for name, value in r.scores.items():
            if name in ("leep", "nce") and not r.source_classifier:
                assert value is None
            else:
                assert value is not None and np.isfinite(value), (r.spec, name)
        assert {"load", "extract", "score", "reference"} <= set(r.seconds)
    assert result.data["n_scored"] == 90  # the training part of the default split (test_size 0.25)


def test_sorted_by_the_score_and_the_noise_encoder_comes_last(ranking) -> None:
    result, _ = ranking
    logme = [r.scores["logme"] for r in result.results]
    assert logme == sorted(logme, reverse=True)
    assert result.recommended == result.results[0].spec
    noise = next(r for r in result.results if r.spec == "test:noise")
    assert result.results[-1] is noise
    assert noise.scores["knn"] < 0.3 and noise.scores["linear_probe"] < 0.3  # chance is 0.1
    assert set(result.agreement) == {"logme", "leep", "nce", "hscore_shrinkage", "knn"}
    assert "LEEP and NCE need a source classifier" in " ".join(result.notes)


def test_reports_are_written(ranking) -> None:
    result, out = ranking
    report = json.loads((out / "rank.json").read_text())
    assert report["recommended"] == result.recommended
    assert [b["spec"] for b in report["backbones"]] == [r.spec for r in result.results]
    assert "comparable across embedding sizes" in report["comparability"]
    md = (out / "rank.md").read_text()
    assert result.recommended in md and "LogME" in md


def test_rank_by_another_score_and_unknown_scores(data) -> None:
    result = rank(data, ["headstart:tiny-cnn?size=16", noise_encoder()], score="knn", scores=["knn"], progress=False)
    assert list(result.results[0].scores) == ["knn"]
    knn = [r.scores["knn"] for r in result.results]
    assert knn == sorted(knn, reverse=True) and result.recommended == "headstart:tiny-cnn?size=16"
    with pytest.raises(DataError, match="unknown score 'logmee'"):
        rank(data, ["headstart:tiny-cnn"], score="logmee")
    with pytest.raises(DataError, match="at least one backbone"):
        rank(data, [])


def test_few_labels_per_class(data) -> None:
    few = rank(data, [with_source_classifier()], labels_per_class=3, seed=1, progress=False)
    (r,) = few.results
    assert few.data["n_scored"] == 30 and few.data["labels_per_class"] == 3
    assert all(v is not None for v in r.scores.values())  # 3-fold CV, k fitted to the folds

    one = rank(data, ["headstart:tiny-cnn?size=16"], labels_per_class=1, progress=False)
    (r,) = one.results
    assert r.scores["logme"] is not None and r.scores["hscore_shrinkage"] is not None
    assert r.scores["knn"] is None and r.scores["linear_probe"] is None
    assert any("at least 2 labelled items per class" in n for n in r.notes)


def test_rank_through_the_api_and_modality_mismatch(data) -> None:
    result = hs.rank(data, backbones=["headstart:tiny-cnn?size=16"], scores=["logme"], progress=False)
    assert result.recommended == "headstart:tiny-cnn?size=16"
    texts = from_arrays(["a b c", "d e f"] * 10, ["x", "y"] * 10)
    with pytest.raises(DataError, match="holds text data"):
        rank(texts, ["headstart:tiny-cnn"], progress=False)


class Counting:
    """Counts the items that go through the source classifier."""

    def __init__(self, backbone) -> None:
        self.inner, self.seen = backbone, 0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def source_logits(self, batch):
        self.seen += self.inner.batch_size_of(batch)
        return self.inner.source_logits(batch)


def test_source_logits_are_batched_and_cached(data, tmp_path) -> None:
    bb = Counting(with_source_classifier(n_source_classes=5))
    cache = FeatureCache(tmp_path)
    first = extract_source_logits(bb, data, cache=cache, progress=False, batch_size=16, num_workers=0)
    assert first.shape == (len(data), 5)
    seen = bb.seen
    assert seen == len(data) + 1  # one probe item to learn the class count, then every item once
    again = extract_source_logits(bb, data, cache=cache, progress=False, num_workers=0)
    assert bb.seen == seen  # all from the cache, which also tells the class count: no probe
    np.testing.assert_array_equal(first, again)
    uncached = extract_source_logits(bb, data, cache=False, progress=False, num_workers=0)
    np.testing.assert_allclose(first, uncached, rtol=1e-5, atol=1e-5)
    assert extract_source_logits(noise_encoder(), data.items[:4], progress=False) is None


def test_a_timm_classifier_reads_the_cached_features_instead_of_running_the_network_again(data, tmp_path) -> None:
    import timm
    import torch

    from headstart.backbones.timm_source import _timm_backbone, timm_facts, wrap_timm_model
    from headstart.features import extract_features
    from headstart.features.source import SourceClassifier

    torch.manual_seed(0)
    model = timm.create_model(TIMM_TINY, pretrained=False, num_classes=7).eval()
    bb = Counting(wrap_timm_model("timm:tiny", model, "seeded-0", has_source_head=True))
    assert bb.classifies_features
    cache = FeatureCache(tmp_path)
    features = extract_features(bb.inner, data, cache=cache, progress=False, num_workers=0)
    logits = extract_source_logits(bb, data, cache=cache, progress=False, num_workers=0)
    assert bb.seen == 0  # the classifier ran on the cached features: no image went through the network again
    full = extract_features(SourceClassifier(bb.inner, 7), data, cache=False, progress=False, num_workers=0)
    assert logits.shape == (len(data), 7) and features.shape[0] == len(data)
    np.testing.assert_allclose(logits, full, rtol=1e-4, atol=1e-4)  # the same logits as the whole network's

    facts = timm_facts(model, has_source_head=True)  # the same backbone, built only if something needs the network
    fresh = Counting(_timm_backbone("timm:tiny", lambda: model, "seeded-0", facts))
    again = extract_source_logits(fresh, data, cache=cache, progress=False, num_workers=0)
    assert not fresh.inner.built and fresh.seen == 0  # a warm call reads the logits back and builds nothing
    np.testing.assert_array_equal(again, logits)
