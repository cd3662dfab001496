from __future__ import annotations

import json

import numpy as np
import pytest

import headstart as hs
from headstart.errors import HeadstartError
from headstart.pretrain import pretrain
from tests.pretrain.pt_helpers import FAST, assert_round_trip


@pytest.mark.parametrize("variant", ["dense", "conv", "denoising"])
def test_each_variant_trains_saves_and_loads_back(variant, pool, tmp_path):
    result = pretrain(pool, method="autoencoder", out=tmp_path / variant, variant=variant, **FAST)
    x = assert_round_trip(result, pool)
    assert x.shape == (len(pool), 32)  # the 32-unit code
    arch = json.loads((result.out / "headstart.json").read_text())["backbone"]["spec"]
    assert arch.startswith("headstart:dense-encoder" if variant != "conv" else "headstart:conv-encoder")
    assert "init=" not in arch and "seed=" not in arch


def test_dense_autoencoder_is_the_classic_one(pool, tmp_path):
    result = pretrain(pool, method="autoencoder", out=tmp_path / "ae", **FAST)
    layers = [m for m in result.backbone.module.modules() if isinstance(m, __import__("torch").nn.Linear)]
    assert [(m.in_features, m.out_features) for m in layers] == [(64, 32)]  # 8x8 input -> 32-unit code
    assert result.backbone.preprocessing["size"] == 8


def test_fit_accepts_the_pretrained_backbone(pool, labelled, tmp_path):
    result = pretrain(pool, method="autoencoder", out=tmp_path / "ae", **FAST)
    model = hs.fit(labelled, backbone=f"local:{result.out}", progress=False, baseline=False)
    assert model.metrics["label"]["accuracy"] >= 0.5  # 30 held-out digits; chance is 0.1 (measured: 0.9)


def test_another_backbone_as_encoder(pool, tmp_path):
    result = pretrain(pool, method="autoencoder", out=tmp_path / "ae", backbone="headstart:tiny-cnn?size=16", **FAST)
    assert_round_trip(result, pool)
    manifest = json.loads((result.out / "headstart.json").read_text())
    assert manifest["backbone"]["spec"] == "headstart:tiny-cnn?size=16"


def test_resume_after_an_interruption_matches_an_uninterrupted_run(pool, tmp_path):
    common = dict(method="autoencoder", epochs=3, batch_size=32, seed=3, progress=False, variant="denoising")
    full = pretrain(pool, out=tmp_path / "full", **common)
    stopped = pretrain(pool, out=tmp_path / "cut", stop_after=1, **common)
    assert not stopped.finished and len(stopped.history) == 1
    assert not (tmp_path / "cut" / "headstart.json").exists()
    resumed = pretrain(pool, out=tmp_path / "cut", resume=True, **common)
    assert resumed.finished and resumed.resumed_at == 1
    assert [r["loss"] for r in resumed.history] == [r["loss"] for r in full.history]
    a = full.backbone.module.state_dict()
    b = resumed.backbone.module.state_dict()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_resume_refuses_other_settings(pool, tmp_path):
    pretrain(pool, method="autoencoder", out=tmp_path / "ae", epochs=2, batch_size=32, stop_after=1, progress=False)
    with pytest.raises(HeadstartError, match="other settings.*lr"):
        pretrain(pool, method="autoencoder", out=tmp_path / "ae", epochs=2, batch_size=32, lr=0.1, resume=True)


def test_bad_options_are_clear(pool, tmp_path):
    with pytest.raises(HeadstartError, match="variant must be one of dense, conv, denoising"):
        pretrain(pool, method="autoencoder", out=tmp_path / "x", variant="sparse", **FAST)
    with pytest.raises(HeadstartError, match="autoencoder has no option colour"):
        pretrain(pool, method="autoencoder", out=tmp_path / "x", colour=1, **FAST)
    with pytest.raises(HeadstartError, match="option code must be a int"):
        pretrain(pool, method="autoencoder", out=tmp_path / "x", code="big", **FAST)


def test_a_diverging_run_stops_with_a_clear_error_and_saves_no_backbone(pool, tmp_path):
    from headstart.training.settings import TrainingError

    with pytest.raises(TrainingError, match=r"diverged in epoch 1 .*lower --lr"):
        pretrain(pool, method="autoencoder", out=tmp_path / "ae", **{**FAST, "lr": 1e30})
    assert not (tmp_path / "ae" / "backbone.safetensors").exists()


def test_tensorboard_gets_each_epoch_when_installed(pool, tmp_path):
    pytest.importorskip("tensorboard", reason="TensorBoard logging needs the tensorboard package (test extra)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = pretrain(pool, method="autoencoder", out=tmp_path / "ae", **{**FAST, "epochs": 2})
    events = EventAccumulator(str(tmp_path / "ae" / "tensorboard"))
    events.Reload()
    losses = events.Scalars("loss")
    assert [e.step for e in losses] == [1, 2]
    assert [e.value for e in losses] == pytest.approx([r["loss"] for r in result.history], rel=1e-6)
