"""`strategy="setfit"`: contrastive tuning of a text encoder, then the tuned head, saved with the tuned encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

import headstart as hs
from headstart.data import from_arrays
from headstart.errors import DataError
from tests.conftest import make_texts


def test_setfit_tunes_the_encoder_and_saves_it(tiny_st_dir, tmp_path) -> None:
    texts, labels = make_texts(40)
    ds = from_arrays(texts, labels)
    model = hs.fit(ds, backbone=f"st:{tiny_st_dir}", strategy="setfit", out=tmp_path / "s", progress=False)
    assert model.report["strategy"] == "setfit" and model.report["adapt"]["pairs"] == 4 * 40  # refit on all 40
    assert model.backbone.weights_id.startswith("contrastive-") and model.tuned_backbone
    manifest = json.loads((tmp_path / "s" / "headstart.json").read_text())
    assert manifest["backbone"]["weights"] == "backbone.safetensors"
    assert (tmp_path / "s" / "backbone.safetensors").is_file()
    again = hs.load(tmp_path / "s")
    probe = ["the goal match won", "the market shares fell"]
    np.testing.assert_allclose(again.predict_proba(probe), model.predict_proba(probe), atol=1e-5)
    frozen = hs.fit(ds, backbone=f"st:{tiny_st_dir}", strategy="probe", progress=False)
    assert not np.allclose(frozen.embed(probe), model.embed(probe), atol=1e-4)  # the encoder itself changed


def test_setfit_refuses_images(digits_small) -> None:
    images, labels = digits_small
    with pytest.raises(DataError, match="setfit tunes sentence encoders on text"):
        hs.fit(from_arrays(images, labels), backbone="headstart:tiny-cnn", strategy="setfit", progress=False)
