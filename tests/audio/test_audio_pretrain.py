"""`pretrain --method contrastive` on unlabelled audio: SimCLR over augmented views of each clip; the result loads
as `local:DIR`, fits, resumes exactly, and refuses a non-audio backbone."""

from __future__ import annotations

import numpy as np
import pytest

import headstart as hs
from headstart.errors import HeadstartError
from headstart.pretrain import pretrain

QUICK = {"method": "contrastive", "epochs": 2, "batch_size": 8, "lr": 3e-3, "progress": False}


def test_simclr_on_unlabelled_clips_gives_a_backbone_that_fits(tones_dir, tmp_path):
    clips = sorted(p for p in tones_dir.rglob("*") if p.suffix in (".wav", ".flac"))
    result = pretrain(str(tones_dir), out=tmp_path / "audio-simclr", **QUICK)  # its labels are never read
    assert result.finished and len(result.history) == 2 and result.history[0]["samples_per_s"] > 0
    assert np.isfinite(result.history[-1]["loss"])
    model = hs.fit(str(tones_dir), backbone=result.spec, baseline=False, progress=False, test_size=0.3)
    assert model.backbone.modality == "audio" and model.metrics["label"]["n"] == 6  # 30% of 20 clips held out
    assert model.metrics["label"]["accuracy"] == 1.0  # 300-660 Hz against 2000-2360 Hz tones: chance is 0.5
    a = hs.embed(clips[:3], backbone=result.spec)
    b = hs.embed(clips[:3], backbone=result.spec)
    np.testing.assert_allclose(a, b, atol=1e-6)  # eval mode: no SpecAugment masks, deterministic


def test_audio_simclr_resumes_to_the_same_loss(tones_dir, tmp_path):
    whole = pretrain(str(tones_dir), out=tmp_path / "whole", **QUICK)
    part = pretrain(str(tones_dir), out=tmp_path / "part", stop_after=1, **QUICK)
    rest = pretrain(str(tones_dir), out=tmp_path / "part", resume=True, **QUICK)
    assert not part.finished and rest.resumed_at == 1
    assert rest.history[-1]["loss"] == pytest.approx(whole.history[-1]["loss"], rel=1e-4)


def test_audio_simclr_needs_an_audio_backbone(tones_dir, tmp_path):
    with pytest.raises(HeadstartError, match="audio backbone"):
        pretrain(str(tones_dir), out=tmp_path / "x", backbone="headstart:tiny-cnn", **QUICK)
