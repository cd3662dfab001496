"""A model saved before the noise-robust audio defaults keeps the features its heads were fitted on."""

from __future__ import annotations

import json

import numpy as np
import pytest

import headstart as hs

pytestmark = pytest.mark.slow  # real speech_embedding weights, a fit and a saved bundle


def test_a_bundle_saved_under_the_old_audio_defaults_still_predicts(tones_dir, tmp_path) -> None:
    old = "headstart:speech-embedding?pool=mean&trim=1&window=1"
    model = hs.fit(tones_dir, backbone=old, out=tmp_path / "m", progress=False)
    manifest_path = tmp_path / "m" / "headstart.json"
    manifest = json.loads(manifest_path.read_text())
    # what such a bundle held: the plain spec, and preprocessing with no `pool` (mean pooling was the only one)
    manifest["backbone"]["spec"] = "headstart:speech-embedding"
    manifest["backbone"]["preprocessing"].pop("pool")
    manifest_path.write_text(json.dumps(manifest))
    again = hs.load(tmp_path / "m")
    clips = sorted(tones_dir.rglob("*.wav"))[:4]
    assert again.backbone.embed_dim == 96 == model.backbone.embed_dim
    np.testing.assert_allclose(again.predict_proba(clips), model.predict_proba(clips), atol=1e-5)
