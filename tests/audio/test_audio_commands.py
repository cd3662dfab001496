"""Every command on audio: fit (probe and fine-tune), predict, evaluate, embed, rank, diagnose, quickstart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

import headstart as hs
from headstart.data import Dataset
from tests.audio.conftest import tone, write_wav
from tests.core.test_cli import run

SPEC = "headstart:logmel-cnn"


@pytest.fixture(scope="module")
def probe_dir(tones_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("audio-probe") / "model"
    code, text = run("fit", tones_dir, "-b", SPEC, "-o", out, "--format", "json")
    assert code == 0, text
    report = json.loads(text)
    assert report["tasks"]["label"]["accuracy"] >= 0.8
    assert report["tasks"]["label"]["baseline"]["name"] == "log-mel + logistic regression"
    return out


def test_predict_evaluate_embed(probe_dir: Path, tones_dir: Path, tmp_path: Path) -> None:
    high = write_wav(tmp_path / "new-high.wav", tone(2100, rate=22050, seed=9), rate=22050)
    code, text = run("predict", probe_dir, high, "--format", "json")
    assert code == 0, text
    (row,) = json.loads(text)
    assert row["input"] == str(high) and row["label"] == "high"
    from headstart.data.audio import load_audio

    low = load_audio(tones_dir / "low" / "1.wav", 16000)  # a waveform at the model's rate
    assert hs.predict(probe_dir, low) == ["low"]  # one waveform, one label

    code, text = run("evaluate", probe_dir, tones_dir, "--format", "json")
    assert code == 0 and json.loads(text)["tasks"]["label"]["n"] == 20
    code, text = run("embed", tones_dir, "-b", SPEC, "-o", tmp_path / "x.npy", "--format", "json")
    assert code == 0 and json.loads(text)["shape"] == [20, 128]
    manifest = json.loads((probe_dir / "headstart.json").read_text())
    assert manifest["backbone"]["modality"] == "audio" and manifest["backbone"]["preprocessing"]["kind"] == "audio"


def test_evaluate_under_test_time_noise(probe_dir: Path, tones_dir: Path) -> None:
    code, text = run("evaluate", probe_dir, tones_dir, "--noise-snr", "-10", "--format", "json")
    assert code == 0, text
    report = json.loads(text)
    assert "noise -10 dB" in report["data"] and report["tasks"]["label"]["n"] == 20
    clean = json.loads(run("evaluate", probe_dir, tones_dir, "--format", "json")[1])
    assert report["tasks"]["label"]["accuracy"] <= clean["tasks"]["label"]["accuracy"]
    code, text = run(
        "evaluate", probe_dir, tones_dir, "--noise-snr", "-10", "--noise-colour", "brown", "--format", "json"
    )
    assert code == 0, text
    assert "brown noise -10 dB" in json.loads(text)["data"]
    code, text = run(
        "evaluate", probe_dir, tones_dir, "--noise-snr", "0", "--noise-colour", "babble", "--format", "json"
    )
    assert code == 0, text
    assert "babble 0 dB" in json.loads(text)["data"]
    code, text = run("evaluate", probe_dir, tones_dir, "--noise-colour", "pink")
    assert code == 2 and "--noise-colour" in text and "needs --noise-snr" in text, text


def test_bad_audio_is_one_line_error(probe_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.wav").write_text("junk")
    write_wav(tmp_path / "b" / "y.wav", tone(300))
    code, text = run("fit", tmp_path, "-b", SPEC, "-o", tmp_path / "m", "--strict")
    assert code == 2 and f"{tmp_path.name}/a/x.wav: not a readable audio file" in text


def test_diagnose_finds_exact_duplicate_audio(tones_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "dup"
    shutil.copytree(tones_dir, data)
    shutil.copy(data / "low" / "1.wav", data / "high" / "copy-of-low-1.wav")
    diagnosis = hs.diagnose(str(data), backbone=SPEC, out=tmp_path / "diag", progress=False)
    groups = [set(g["where"]) for g in diagnosis.exact_duplicates]
    assert groups == [{"dup/low/1.wav", "dup/high/copy-of-low-1.wav"}]


def test_rank_audio_backbones(tones_dir: Path) -> None:
    ranking = hs.rank(str(tones_dir), backbones=[SPEC, f"{SPEC}?seed=1"], scores=["logme", "knn"], progress=False)
    assert {r.spec for r in ranking.results} == {SPEC, f"{SPEC}?seed=1"}


def test_finetune_audio_and_reload(tones_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    model = hs.fit(
        str(tones_dir),
        backbone=SPEC,
        strategy="finetune",
        epochs=2,
        batch_size=4,
        augment="strong",
        val_size=0.0,
        backbone_lr_mult=1.0,
        out=out,
        progress=False,
    )
    assert model.report["finetune"]["epochs_run"] == 2
    loaded = hs.load(out)
    wave = np.stack([tone(2000, rate=16000), tone(300, rate=16000)])  # N x samples: N waveforms
    assert np.allclose(loaded.predict_proba(wave), model.predict_proba(wave), atol=1e-5)


def test_audio_augmentation_is_seeded(tones_dir: Path) -> None:
    from headstart.backbones import create_backbone
    from headstart.finetune.augment import train_transform
    from headstart.finetune.config import AugmentConfig

    bb = create_backbone(SPEC)
    path = sorted(tones_dir.rglob("*.wav"))[0]
    aug = train_transform(bb, AugmentConfig(augment="strong"))
    a, b, c = aug(path, 1), aug(path, 1), aug(path, 2)
    assert a.shape == (32000,) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert bb.spec_augment.freq_masks == 2
    plain = train_transform(bb, AugmentConfig(augment="none"))
    assert np.array_equal(plain(path, 1), bb.prepare(path)) and bb.spec_augment.freq_masks == 0


def test_quickstart_audio(spoken_digits: Dataset, tmp_path: Path) -> None:
    # two small budgets keep this fast; the README's `--budgets 2,all` run (slow) fits on every label
    result = hs.quickstart("audio", out=tmp_path / "qs", budgets="2,3", backbone=SPEC, progress=False)
    assert result["data"] == "samples:spoken-digits" and result["baseline"] == "log-mel + logistic regression"
    assert [r["labels_per_class"] for r in result["budgets"]] == ["2", "3"]
    assert [r["n_train"] for r in result["budgets"]] == [20, 30]
    assert "held out" in (tmp_path / "qs" / "quickstart.md").read_text()
