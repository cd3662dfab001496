"""Text to text through the Python API: strategies, the saved bundle (hashes checked), resume, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import headstart as hs
from headstart.errors import BackboneError, BundleError
from headstart.sequence.text import load_adapter
from headstart.training.settings import TrainingError
from tests.sequence.conftest import toy_pairs

QUICK = {"epochs": 2, "lr": 5e-3, "batch_size": 16, "progress": False, "baseline": False}


@pytest.fixture(scope="module")
def saved(tiny_marian_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("api-run") / "model"
    model = hs.fit(toy_pairs(60), task="seq2seq", backbone=f"hf:{tiny_marian_dir}", out=out, **QUICK)
    assert model.report["n_test"] == 15 and len(model.report["history"]) == 2
    return out


def test_strategies_choose_what_trains(tiny_marian_dir: Path) -> None:
    counts = {}
    for strategy in ("full", "decoder", "lora"):
        adapter = load_adapter(f"hf:{tiny_marian_dir}")
        adapter.select_trainable(strategy)
        names = [n for n, p in adapter.model.named_parameters() if p.requires_grad]
        counts[strategy] = len(names)
        if strategy == "decoder":
            assert names and not any(n.startswith("model.encoder.") for n in names)
        if strategy == "lora":
            assert names and all("lora_" in n for n in names)
        assert not any("embed_positions" in n for n in names)  # sinusoidal: never trained
    assert counts["full"] > counts["decoder"] > 0 and counts["lora"] > 0


def test_load_predict_and_tampered_weights(saved: Path) -> None:
    model = hs.load(saved)
    assert model.task == "seq2seq" and hs.predict(model, ["one two"]) == model.predict(["one two"])
    manifest = json.loads((saved / "headstart.json").read_text())
    assert manifest["kind"] == "sequence" and "model/model.safetensors" in manifest["hashes"]
    report = hs.evaluate(saved, toy_pairs(10, seed=3))
    assert report["n_test"] == 10 and set(report["metrics"]) == {"chrf", "bleu", "rouge1", "rouge2", "rougeL"}
    weights = saved / "model" / "model.safetensors"
    original = weights.read_bytes()
    try:
        weights.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(BundleError, match="model.safetensors: its SHA-256 is not the one"):
            hs.load(saved)
    finally:
        weights.write_bytes(original)


def test_resume_goes_on_from_the_checkpoint_and_refuses_other_settings(tiny_marian_dir: Path, saved: Path) -> None:
    spec = f"hf:{tiny_marian_dir}"
    again = hs.fit(toy_pairs(60), task="seq2seq", backbone=spec, out=saved, resume=True, **QUICK)
    assert again.report["resumed_at"] == 2 and len(again.report["history"]) == 2
    with pytest.raises(TrainingError, match="written with other settings .*lr"):
        hs.fit(toy_pairs(60), task="seq2seq", backbone=spec, out=saved, resume=True, **{**QUICK, "lr": 1e-3})


def test_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(BackboneError, match="no such folder"):
        hs.fit(toy_pairs(20), task="seq2seq", backbone="hf:./not-here", **QUICK)
    with pytest.raises(TypeError, match="labels_per_class: classification options"):
        hs.fit(toy_pairs(20), task="seq2seq", labels_per_class=2, **QUICK)
    (tmp_path / "headstart.json").write_text(json.dumps({"kind": "sequence", "format": "headstart-sequence"}))
    with pytest.raises(BundleError, match="no 'hashes'"):
        hs.load(tmp_path)
