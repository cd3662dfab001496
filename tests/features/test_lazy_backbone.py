"""Lazy backbones: extraction, `hs.embed`, `rank` and `diagnose` over cached features never build the network; a cold
run does; results are identical either way, and the cache key still changes whenever weights or settings change."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch

import headstart as hs
from headstart.backbones import create_backbone, st_source
from headstart.backbones.base import Backbone
from headstart.data import from_arrays
from headstart.errors import BackboneError
from headstart.features import extract_features
from tests.conftest import make_texts, noise_images


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A fresh $HEADSTART_CACHE (feature cache and backbone cards) for each test."""
    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def builds(monkeypatch) -> dict[str, int]:
    """Counts the networks actually built: sentence-transformers loads, and every lazy module's build."""
    counts = {"st": 0, "lazy": 0}
    load_model, materialise = st_source._load_model, Backbone._materialise

    def counting_load(*args, **kwargs):
        counts["st"] += 1
        return load_model(*args, **kwargs)

    def counting_materialise(self):
        counts["lazy"] += 1
        return materialise(self)

    monkeypatch.setattr(st_source, "_load_model", counting_load)
    monkeypatch.setattr(Backbone, "_materialise", counting_materialise)
    return counts


@pytest.fixture(scope="module")
def texts() -> tuple[list[str], list[str]]:
    return make_texts(40)


def test_warm_st_extraction_builds_nothing_and_matches_the_cold_one(cache, builds, tiny_st_dir, texts) -> None:
    spec = f"st:{tiny_st_dir}"
    cold = create_backbone(spec)  # first time on this machine: loaded, and its card written
    assert cold.built and builds["st"] == 1
    first = extract_features(cold, texts[0], progress=False)

    warm = create_backbone(spec)
    assert not warm.built and builds["st"] == 1  # the card told the size and the maximum length
    assert warm.cache_key == cold.cache_key and warm.describe() == cold.describe()
    again = extract_features(warm, texts[0], progress=False)
    assert not warm.built and builds == {"st": 1, "lazy": 0}
    np.testing.assert_array_equal(first, again)

    # items that are not cached yet: now the network is built, once, and gives what the eager one gives
    new = [t + " today" for t in texts[0][:6]]
    lazy_rows = extract_features(warm, new, progress=False)
    assert warm.built and builds == {"st": 2, "lazy": 1}
    np.testing.assert_allclose(lazy_rows, extract_features(cold, new, cache=False, progress=False), atol=1e-6)
    assert warm.tokenizer is warm.module.tokenizer


def test_embed_rank_and_diagnose_over_cached_features_build_nothing(cache, builds, tiny_st_dir, texts) -> None:
    data = from_arrays(*texts)
    specs = [f"st:{tiny_st_dir}", f"st:{tiny_st_dir}?init=random"]
    x = hs.embed(data, backbone=specs[0], progress=False)
    ranked = hs.rank(data, backbones=specs, labels_per_class=8, progress=False)
    diagnosis = hs.diagnose(data, backbone=specs[0], progress=False, permutations=20)
    cold_builds = dict(builds)
    assert cold_builds["st"] == 2  # one load per backbone, the first time each is seen

    x_warm = hs.embed(data, backbone=specs[0], progress=False)
    ranked_warm = hs.rank(data, backbones=specs, labels_per_class=8, progress=False)
    diagnosis_warm = hs.diagnose(data, backbone=specs[0], progress=False, permutations=20)
    assert builds == cold_builds  # warm: nothing built at all
    np.testing.assert_array_equal(x, x_warm)
    assert [(r.spec, r.embed_dim, r.scores, r.source_classifier) for r in ranked.results] == [
        (r.spec, r.embed_dim, r.scores, r.source_classifier) for r in ranked_warm.results
    ]
    assert diagnosis_warm.data == diagnosis.data


def test_warm_fit_builds_nothing_and_predicts_the_same(cache, builds, tiny_st_dir, texts) -> None:
    data = from_arrays(*texts)
    spec = f"st:{tiny_st_dir}"
    cold = hs.fit(data, backbone=spec, strategy="probe", baseline=False, progress=False)
    before = dict(builds)
    warm = hs.fit(data, backbone=spec, strategy="probe", baseline=False, progress=False)
    assert builds == before and not warm.backbone.built
    hs.fit(data, backbone=spec, baseline=False, progress=False)  # auto, the default: every candidate on cached rows
    assert builds == before
    assert warm.metrics == cold.metrics
    # prediction on new text needs the network: it is built then, and agrees with the cold model
    assert warm.predict(["the bank profit rose today"]) == cold.predict(["the bank profit rose today"])
    assert warm.backbone.built


@pytest.mark.slow  # real EfficientNet-Lite0 weights
def test_efficientnet_lite0_is_described_without_timm_or_weights(cache, monkeypatch) -> None:
    import timm

    created = []
    real = timm.create_model
    monkeypatch.setattr(timm, "create_model", lambda *a, **k: created.append(a) or real(*a, **k))
    images = noise_images(3)

    cold = create_backbone("headstart:efficientnet-lite0")
    assert not cold.built and cold.embed_dim == 1280 and cold.has_source_classifier
    first = extract_features(cold, images, progress=False, num_workers=0)
    assert cold.built and len(created) == 1

    warm = create_backbone("headstart:efficientnet-lite0")
    again = extract_features(warm, images, progress=False, num_workers=0)
    assert not warm.built and len(created) == 1
    assert warm.cache_key == cold.cache_key
    np.testing.assert_array_equal(first, again)
    random = create_backbone("headstart:efficientnet-lite0?init=random")
    assert random.cache_key != warm.cache_key and not random.has_source_classifier


def test_timm_and_hf_are_described_without_building(cache, tiny_bert_dir) -> None:
    timm_bb = create_backbone("timm:test_efficientnet?init=random")
    hf_bb = create_backbone(f"hf:{tiny_bert_dir}")
    assert not timm_bb.built and not hf_bb.built and hf_bb.embed_dim == 32
    assert hf_bb.preprocessing["max_length"] == 128
    images = noise_images(2)
    with torch.inference_mode():
        lazy = timm_bb.embed(timm_bb.collate([timm_bb.prepare(i) for i in images]))
        tokens = hf_bb.collate(["the market fell"])
        assert not hf_bb.built  # tokenising needs the tokenizer only
        text = hf_bb.embed(tokens)
    assert lazy.shape == (2, timm_bb.embed_dim) and text.shape == (1, 32)
    assert timm_bb.embed_dim == timm_bb.module.num_features


def test_lazy_build_leaves_the_random_stream_alone(cache) -> None:
    bb = create_backbone("headstart:efficientnet-lite0?init=random")
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    assert bb.module is not None  # built here, seeded inside
    torch.testing.assert_close(torch.rand(3), expected)
    again = create_backbone("headstart:efficientnet-lite0?init=random").module
    for a, b in zip(bb.module.state_dict().values(), again.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_changed_settings_or_weights_change_the_key(cache, tiny_st_dir, builds) -> None:
    folder = cache.parent / "st-copy"
    shutil.copytree(tiny_st_dir, folder)
    spec = f"st:{folder}"
    key = create_backbone(spec).cache_key
    assert create_backbone(spec).cache_key == key and builds["st"] == 1

    config = folder / "tokenizer_config.json"
    settings = json.loads(config.read_text())
    settings["model_max_length"] = 16
    config.write_text(json.dumps(settings))
    shorter = create_backbone(spec)  # another fingerprint: loaded again, the card is not trusted
    assert builds["st"] == 2 and shorter.preprocessing["max_length"] == 16 and shorter.cache_key != key

    weights = folder / "model.safetensors"
    later = weights.stat().st_mtime + 60
    os.utime(weights, (later, later))  # the weight file changed (as far as its size and time tell)
    assert create_backbone(spec).cache_key not in (key, shorter.cache_key)
    assert builds["st"] == 3


def test_a_card_that_disagrees_with_the_model_stops_the_build(cache, tiny_st_dir) -> None:
    spec = f"st:{tiny_st_dir}"
    create_backbone(spec)
    (card,) = (cache / "backbones").glob("*.json")
    saved = json.loads(card.read_text())
    saved["facts"]["embed_dim"] = 999
    card.write_text(json.dumps(saved))
    lying = create_backbone(spec)
    assert lying.embed_dim == 999 and not lying.built
    with pytest.raises(BackboneError, match="differ from those noted"):
        _ = lying.module
    assert not lying.built and not card.exists()
    assert create_backbone(spec).embed_dim == 32


def test_a_local_backbone_loads_its_weights_when_built(cache, tiny_st_dir, tmp_path) -> None:
    from safetensors.torch import save_model

    base = create_backbone(f"st:{tiny_st_dir}?init=random").module
    with torch.no_grad():
        for p in base.parameters():
            p.add_(0.01)
    folder = tmp_path / "tuned"
    folder.mkdir()
    save_model(base, str(folder / "backbone.safetensors"))
    section = {"spec": f"st:{tiny_st_dir}", "weights": "backbone.safetensors"}
    (folder / "headstart.json").write_text(json.dumps({"backbone": section}))

    lazy = create_backbone(f"local:{folder}")
    assert not lazy.built
    batch = lazy.collate(["the market fell"])
    with torch.inference_mode():
        tuned = lazy.embed(batch)
        expected = base(dict(batch))["sentence_embedding"]
    torch.testing.assert_close(tuned, expected)

    save_model(torch.nn.Linear(2, 2), str(folder / "backbone.safetensors"))  # weights that do not fit
    broken = create_backbone(f"local:{folder}")
    assert broken.cache_key != lazy.cache_key
    with pytest.raises(BackboneError, match="cannot load weights"):
        _ = broken.module
    assert not broken.built  # never half-built: no random-init module left behind


def test_a_pickled_lazy_backbone_is_built_and_embeds_alike(cache, tiny_st_dir) -> None:
    import pickle

    create_backbone(f"st:{tiny_st_dir}")  # notes the card: the next one is lazy
    lazy = create_backbone(f"st:{tiny_st_dir}")
    assert not lazy.built
    copy = pickle.loads(pickle.dumps(lazy))  # e.g. DataLoader workers that spawn: the copy carries the module
    assert lazy.built and copy.built
    with torch.inference_mode():
        torch.testing.assert_close(copy.embed(copy.collate(["a b"])), lazy.embed(lazy.collate(["a b"])))
