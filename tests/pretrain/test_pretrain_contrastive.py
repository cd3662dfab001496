from __future__ import annotations

import json

import pytest
import torch

from headstart.errors import HeadstartError
from headstart.pretrain import pretrain
from headstart.pretrain.contrastive import OPTIONS, augment, nt_xent
from tests.pretrain.pt_helpers import FAST, assert_round_trip


def test_simclr_trains_saves_and_loads_back(pool, tmp_path):
    result = pretrain(pool, method="contrastive", out=tmp_path / "simclr", **FAST)
    x = assert_round_trip(result, pool)
    assert x.shape == (len(pool), 128)  # headstart:cnn width 32 -> 4 * 32; the projection head is gone
    manifest = json.loads((result.out / "headstart.json").read_text())
    assert manifest["backbone"]["spec"] == "headstart:cnn?size=16&width=32"
    assert "head" not in {k.split(".")[0] for k in result.backbone.module.state_dict()}


def test_continues_a_given_backbone(pool, tmp_path):
    result = pretrain(pool, method="contrastive", out=tmp_path / "tiny", backbone="headstart:tiny-cnn?size=16", **FAST)
    assert_round_trip(result, pool)
    again = pretrain(pool, method="contrastive", out=tmp_path / "again", backbone=result.spec, **FAST)
    assert_round_trip(again, pool)
    manifest = json.loads((again.out / "headstart.json").read_text())
    assert manifest["backbone"]["spec"] == "headstart:tiny-cnn?size=16"  # the architecture, not the folder


def test_nt_xent_is_low_for_matching_views():
    z = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    matched = nt_xent(torch.cat([z, z]), 0.1)
    shuffled = nt_xent(torch.cat([z, z[torch.randperm(8)]]), 0.1)
    assert matched < shuffled


def test_views_never_flip_by_default_and_differ():
    x = torch.zeros(4, 3, 16, 16) - 1.0
    x[:, :, 4:12, 2:5] = 1.0  # a bar on the left
    g = torch.Generator().manual_seed(0)
    opts = {**OPTIONS, "rotate": 0.0, "shift": 0.0, "scale_min": 1.0, "aspect": 1.0, "jitter": 0.0, "noise": 0.0}
    view = augment(x, torch.full((1, 3, 1, 1), -1.0), g, opts)
    assert torch.allclose(view, x, atol=1e-5)  # identity when every random range is zero: no flip
    varied = augment(x, torch.full((1, 3, 1, 1), -1.0), g, dict(OPTIONS))
    assert not torch.allclose(varied[0], varied[1])


def test_text_data_is_refused(tmp_path):
    from headstart.data import from_arrays

    texts = from_arrays(["the market fell", "the team won"] * 4, modality="text")
    with pytest.raises(HeadstartError, match="contrastive pretraining works on image or audio data; .* is text data"):
        pretrain(texts, method="contrastive", out=tmp_path / "x", **FAST)
