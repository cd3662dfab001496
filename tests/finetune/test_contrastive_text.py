"""Contrastive tuning of text backbones (the SetFit recipe) on the tiny local BERT: weights, identity, determinism,
the geometry it should produce, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headstart.backbones import create_backbone
from headstart.data import Dataset, from_arrays
from headstart.errors import HeadstartError
from headstart.finetune.contrastive_text import contrastive_tune, make_pairs, weights_digest


@pytest.fixture()
def toy(topics: Dataset) -> Dataset:
    """16 two-topic texts (business / sport words), 8 per class."""
    return topics.subset(range(16))


def _state(backbone) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in backbone.module.state_dict().items()}


def _class_gap(backbone, ds: Dataset) -> float:
    """Mean cosine between same-class texts minus mean cosine between different-class texts."""
    with torch.inference_mode():
        emb = backbone.embed(backbone.collate([backbone.prepare(t) for t in ds.items])).float()
    z = torch.nn.functional.normalize(emb, dim=-1)
    cos = (z @ z.T).numpy()
    y = np.asarray(ds.labels)
    same = (y[:, None] == y[None, :]) & ~np.eye(len(y), dtype=bool)
    different = y[:, None] != y[None, :]
    return float(cos[same].mean() - cos[different].mean())


def test_tuning_changes_weights_and_weights_id(tiny_bert_dir, toy):
    bb = create_backbone(f"hf:{tiny_bert_dir}")
    before, old_id = _state(bb), bb.weights_id
    history = contrastive_tune(bb, toy, pairs_per_item=4, batch_size=8, epochs=2, progress=False)

    after = bb.module.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert bb.weights_id != old_id and bb.weights_id == f"contrastive-{weights_digest(bb.module)}"
    assert not bb.module.training
    assert all(p.device.type == "cpu" and p.requires_grad for p in bb.module.parameters())
    assert history["pairs"] == 4 * len(toy) * 2 and history["positive_pairs"] == history["pairs"] // 2
    assert history["steps"] == 2 * 8 and len(history["loss"]) == 2 and history["seconds"] > 0
    assert history["weights_id"] == bb.weights_id


def test_same_seed_same_weights_other_seed_other_weights(tiny_st_dir, toy):
    def tuned(seed: int) -> str:
        bb = create_backbone(f"st:{tiny_st_dir}")
        contrastive_tune(bb, toy, seed=seed, pairs_per_item=2, batch_size=8, progress=False)
        return bb.weights_id

    torch.manual_seed(123)
    outside = torch.get_rng_state()
    first = tuned(0)
    assert torch.equal(torch.get_rng_state(), outside)  # the caller's random state is left alone
    assert tuned(0) == first
    assert tuned(1) != first


@pytest.mark.parametrize("loss", ["cosine", "supcon"])
def test_tuning_pulls_same_class_texts_together(tiny_st_dir, topics, loss):
    bb = create_backbone(f"st:{tiny_st_dir}")
    train, held_out = topics.subset(range(24)), topics.subset(range(24, 48))
    before = _class_gap(bb, held_out)
    contrastive_tune(bb, train, pairs_per_item=8, batch_size=16, epochs=2, lr=1e-3, loss=loss, progress=False)
    after = _class_gap(bb, held_out)
    assert after > before + 0.1, (before, after)


def test_make_pairs_balanced_valid_and_seeded():
    labels = np.array(["a"] * 5 + ["b"] * 3 + ["c"])  # 'c' has no partner of its own class
    pairs = make_pairs(labels, 6, seed=0)
    assert pairs.shape == (6 * 9, 3)
    assert pairs[:, 2].sum() == 27  # half positive
    assert np.all(pairs[:, 0] != pairs[:, 1])
    assert np.all((labels[pairs[:, 0]] == labels[pairs[:, 1]]) == pairs[:, 2].astype(bool))
    assert not np.any((labels[pairs[:, 0]] == "c") & (pairs[:, 2] == 1))
    negatives = np.bincount(pairs[pairs[:, 2] == 0, 0], minlength=9)
    assert negatives.min() == negatives.max() == 3  # each item anchors its share of negatives
    assert np.array_equal(make_pairs(labels, 6, seed=0), pairs)
    assert not np.array_equal(make_pairs(labels, 6, seed=1), pairs)


def test_bad_input_is_a_clear_error(tiny_bert_dir, toy):
    from torch import nn

    from headstart.backbones.base import ImageBackbone, ImagePreprocessing

    bb = create_backbone(f"hf:{tiny_bert_dir}")
    image_bb = ImageBackbone(
        "test:image",
        nn.Linear(2, 2),
        embed_dim=2,
        weights_id="w",
        preprocessing=ImagePreprocessing(),
        forward_embed=lambda m, x: m(x),
    )
    with pytest.raises(HeadstartError, match="needs a text backbone"):
        contrastive_tune(image_bb, toy, progress=False)
    one_class = from_arrays(["the market fell", "the bank rose", "profit rose"], ["business"] * 3, modality="text")
    with pytest.raises(HeadstartError, match="at least 2 classes"):
        contrastive_tune(bb, one_class, progress=False)
    singletons = from_arrays(["the market fell", "the team won"], ["business", "sport"], modality="text")
    with pytest.raises(HeadstartError, match="no same-class pairs"):
        contrastive_tune(bb, singletons, progress=False)
    images = from_arrays(np.zeros((4, 8, 8), dtype=np.uint8), ["a", "a", "b", "b"], modality="image")
    with pytest.raises(HeadstartError, match="needs text data"):
        contrastive_tune(bb, images, progress=False)
    with pytest.raises(HeadstartError, match="no label column 'topic'"):
        contrastive_tune(bb, toy, task="topic", progress=False)
    with pytest.raises(HeadstartError, match="pairs_per_item"):
        contrastive_tune(bb, toy, pairs_per_item=0, progress=False)
    with pytest.raises(HeadstartError, match="unknown loss"):
        contrastive_tune(bb, toy, loss="triplet", progress=False)
    unlabelled = from_arrays(["the market fell", "the team won"], None, modality="text")
    with pytest.raises(HeadstartError, match="needs labels"):
        contrastive_tune(bb, unlabelled, progress=False)
