from __future__ import annotations

import pytest

from headstart.errors import HeadstartError
from headstart.pretrain import pretrain
from tests.pretrain.pt_helpers import FAST, assert_round_trip


def test_dcgan_trains_saves_samples_and_loads_back(pool, tmp_path):
    result = pretrain(pool, method="gan", out=tmp_path / "gan", **{**FAST, "epochs": 2})
    x = assert_round_trip(result, pool)
    assert x.shape == (len(pool), (32 + 64) * 4)  # two blocks, each max-pooled to 2x2
    grids = sorted((result.out / "figures").glob("samples-epoch-*.png"))
    assert [g.name for g in grids] == ["samples-epoch-001.png", "samples-epoch-002.png"]
    assert {"d_loss", "g_loss", "loss"} <= set(result.history[-1])
    assert "figures/samples-epoch-002.png" in (result.out / "report.md").read_text()


def test_gan_needs_a_dcgan_trunk(pool, tmp_path):
    with pytest.raises(HeadstartError, match="gan pretraining trains a headstart:dcgan-d backbone"):
        pretrain(pool, method="gan", out=tmp_path / "x", backbone="headstart:tiny-cnn", **FAST)
