"""Checks every pretraining method passes: the saved folder loads as `local:DIR` and embeds exactly as trained."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from headstart.data import Dataset

FAST = {"epochs": 1, "batch_size": 32, "progress": False}


def assert_round_trip(result: Any, data: Dataset) -> np.ndarray:
    from headstart.backbones import create_backbone
    from headstart.features import extract_features

    assert result.finished and result.spec == f"local:{result.out.resolve()}"
    for name in ("headstart.json", "backbone.safetensors", "report.md", "history.csv", "loss-curve.png"):
        assert (result.out / name).is_file(), name
    manifest = json.loads((result.out / "headstart.json").read_text())
    assert manifest["backbone"]["weights"] == "backbone.safetensors"
    assert manifest["pretrain"]["method"] == result.method
    assert manifest["pretrain"]["samples_per_s"] > 0
    trained = extract_features(result.backbone, data, cache=False, progress=False)
    loaded = create_backbone(result.spec)
    assert loaded.embed_dim == result.backbone.embed_dim
    again = extract_features(loaded, data, cache=False, progress=False)
    np.testing.assert_allclose(again, trained, rtol=1e-5, atol=1e-6)
    assert np.isfinite(again).all() and again.std() > 0
    return again
