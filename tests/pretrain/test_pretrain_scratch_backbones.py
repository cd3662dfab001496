"""`headstart:` architectures for pretraining (headstart.backbones.scratch) pass the backbone contract."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headstart.backbones import create_backbone, list_backbones
from headstart.errors import BackboneError

SPECS = {
    "headstart:dense-encoder?input=8&code=32": 32,
    "headstart:dense-encoder?input=12&code=16&hidden=64&gray=0": 16,
    "headstart:conv-encoder?input=16&code=32": 32,
    "headstart:dcgan-d?size=32&width=8&pool=1": 8 + 16 + 32,
    "headstart:cnn?size=16&width=8": 32,
}


@pytest.mark.parametrize("spec", list(SPECS))
def test_scratch_backbone_contract(spec: str) -> None:
    rng = np.random.default_rng(0)
    items = [rng.integers(0, 256, (8, 8), dtype=np.uint8), rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)]
    bb = create_backbone(spec)
    assert bb.modality == "image" and bb.embed_dim == SPECS[spec]
    batch = bb.collate([bb.prepare(i) for i in items])
    with torch.inference_mode():
        a, b = bb.embed(batch).numpy(), bb.embed(batch).numpy()
    assert a.shape == (2, bb.embed_dim) and np.isfinite(a).all()
    np.testing.assert_allclose(a, b)
    rebuilt = create_backbone(spec + "&init=random")
    assert rebuilt.module.state_dict().keys() == bb.module.state_dict().keys()
    assert bb.preprocessing["crop_pct"] == 1.0  # the whole small image, resized


def test_scratch_options_are_checked() -> None:
    with pytest.raises(BackboneError, match="headstart:dense-encoder has no option depth"):
        create_backbone("headstart:dense-encoder?depth=3")
    with pytest.raises(BackboneError, match="option code must be an integer"):
        create_backbone("headstart:dense-encoder?code=many")
    with pytest.raises(BackboneError, match="size must be a power of two"):
        create_backbone("headstart:dcgan-d?size=24")


def test_scratch_backbones_are_listed() -> None:
    specs = {r["spec"] for r in list_backbones()}
    assert {"headstart:dense-encoder", "headstart:conv-encoder", "headstart:dcgan-d", "headstart:cnn"} <= specs
