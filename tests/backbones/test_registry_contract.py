"""One contract over every backbone source: each builds through `create_backbone`, embeds, and describes itself."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from headstart.backbones import BackboneSpec, create_backbone, list_backbones
from headstart.errors import BackboneError


@pytest.fixture(scope="module")
def specs(tiny_bert_dir, tiny_st_dir) -> dict[str, tuple[str, list]]:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (20, 24, 3), dtype=np.uint8) for _ in range(3)]
    texts = ["the market fell", "the team won the match", "a"]
    return {
        "headstart:tiny-cnn": ("headstart:tiny-cnn", images),
        "timm-random": ("timm:test_efficientnet?init=random", images),
        "hf-text": (f"hf:{tiny_bert_dir}", texts),
        "st": (f"st:{tiny_st_dir}", texts),
    }


@pytest.mark.parametrize("name", ["headstart:tiny-cnn", "timm-random", "hf-text", "st"])
def test_backbone_contract(specs, name: str) -> None:
    spec, items = specs[name]
    bb = create_backbone(spec)
    assert bb.modality in ("image", "text")
    assert bb.embed_dim > 0
    batch = bb.collate([bb.prepare(i) for i in items])
    with torch.inference_mode():
        a = bb.embed(batch).numpy()
        b = bb.embed(batch).numpy()
    assert a.shape == (len(items), bb.embed_dim)
    assert np.isfinite(a).all()
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    info = bb.describe()
    assert info["spec"] == bb.spec and info["preprocessing"]["kind"] == bb.modality
    assert bb.cache_key == create_backbone(spec).cache_key  # same spec + weights -> same cache key


def test_embed_is_differentiable_for_fine_tuning() -> None:
    bb = create_backbone("headstart:tiny-cnn")
    x = bb.collate([bb.prepare(np.zeros((8, 8), np.uint8))] * 2)
    bb.embed(x).sum().backward()
    assert any(p.grad is not None for p in bb.module.parameters())


def test_spec_parsing_and_errors() -> None:
    spec = BackboneSpec.parse("timm:resnet18?init=random")
    assert (spec.prefix, spec.name, spec.random_init) == ("timm", "resnet18", True)
    with pytest.raises(BackboneError, match="no source prefix"):
        create_backbone("resnet18")
    with pytest.raises(BackboneError, match="unknown backbone source 'nope'"):
        create_backbone("nope:thing")
    with pytest.raises(BackboneError, match="timm has no model named 'resnet_does_not_exist'"):
        create_backbone("timm:resnet_does_not_exist")
    with pytest.raises(BackboneError, match="ships no backbone named 'nope'"):
        create_backbone("headstart:nope")


def test_uncached_timm_weights_fail_fast_and_clearly() -> None:
    t0 = time.perf_counter()
    with pytest.raises(BackboneError, match=r"timm:resnet18 .* not cached .*init=random"):
        create_backbone("timm:resnet18")
    assert time.perf_counter() - t0 < 10


def test_missing_hub_model_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(BackboneError, match="cannot load Hugging Face model"):
        create_backbone("hf:no-such-org/no-such-model")
    with pytest.raises(BackboneError, match="cannot load sentence-transformers model"):
        create_backbone("st:no-such-org/no-such-model")


def test_random_init_differs_from_pretrained(tiny_st_dir) -> None:
    a = create_backbone(f"st:{tiny_st_dir}")
    b = create_backbone(f"st:{tiny_st_dir}?init=random")
    assert a.cache_key != b.cache_key
    batch = a.collate(["the market fell"])
    with torch.inference_mode():
        assert not np.allclose(a.embed(batch).numpy(), b.embed(batch).numpy())


def test_list_backbones_reports_offline_availability() -> None:
    rows = {r["spec"]: r for r in list_backbones()}
    assert rows["headstart:efficientnet-lite0"]["offline"] is True
    assert rows["st:all-MiniLM-L6-v2"]["offline"] is True
    assert "headstart:tiny-cnn" in rows and "local:PATH" in rows
