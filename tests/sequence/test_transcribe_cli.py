"""Speech to text through the installed `headstart` command, as a user runs it: a tiny Whisper built locally learns
to tell rising from falling sweeps ("going up" / "going down") in a folder of clips with a transcripts table (one row
without a transcript, one unreadable file: both named, skipped), then the saved model is evaluated and predicts.
The slow test fine-tunes the real Whisper tiny.en on the spoken-phrases sample."""

from __future__ import annotations

import csv
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.sequence.tiny_speech import build_tiny_whisper, write_clips


def headstart(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run(["headstart", *args], capture_output=True, text=True, env=env, timeout=600)


def sweeps(folder: Path, n: int, start: int = 0) -> dict[str, str]:
    """n clips, alternately rising and falling sweeps of different ranges and lengths, and their transcripts."""
    specs, texts = {}, {}
    for i in range(start, start + n):
        low, high = 200 + 37 * i, 1400 + 23 * i
        up = i % 2 == 0
        specs[f"s{i:02d}"] = (0.6 + 0.05 * (i % 7), low if up else high, high if up else low)
        texts[f"s{i:02d}.wav"] = "going up" if up else "going down"
    write_clips(folder, specs)
    return texts


def write_table(folder: Path, texts: dict[str, str]) -> None:
    with open(folder / "transcripts.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["file", "text"])
        writer.writerows(texts.items())


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, Path]:
    root = tmp_path_factory.mktemp("transcribe-cli")
    model = build_tiny_whisper(root / "tiny-whisper")
    clips = root / "clips"
    texts = sweeps(clips, 20)
    (clips / "broken.wav").write_bytes(b"RIFF, but no audio")
    texts["broken.wav"] = "going nowhere"
    texts["s00.wav"] = ""  # a clip without its transcript
    write_table(clips, texts)
    out = root / "run"
    done = headstart("fit", str(clips), "--task", "transcribe", "-b", f"hf:{model}", "--out", str(out),
                     "--epochs", "15", "--lr", "5e-3", "--batch-size", "2", "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    return out, json.loads(done.stdout), root


def test_fit_learns_and_names_what_it_skipped(fitted: tuple[Path, dict, Path]) -> None:
    out, report, _ = fitted
    assert report["task"] == "transcribe" and report["primary"] == "wer"
    assert report["metrics"]["wer"] < report["baselines"]["pretrained, not fine-tuned"]["wer"]
    assert report["metrics"]["wer"] <= 0.5 and "cer" in report["metrics"]
    skipped = " | ".join(report["skipped"])
    assert "s00.wav" in skipped and "broken.wav" in skipped
    assert report["n_train"] + report["n_val"] + report["n_test"] == 19
    for name in ("headstart.json", "model/model.safetensors", "processor/tokenizer.json", "curves.png",
                 "metrics.csv", "report.md", "checkpoint/checkpoint.json"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not list(out.rglob("*.bin")) and not list(out.rglob("*.pt")) and not list(out.rglob("*.pkl"))


def test_evaluate_and_predict_a_saved_model(fitted: tuple[Path, dict, Path]) -> None:
    out, _, root = fitted
    fresh = root / "fresh"
    write_table(fresh, sweeps(fresh, 6, start=40))
    done = headstart("evaluate", str(out), str(fresh), "--format", "json")
    assert done.returncode == 0, done.stderr
    scored = json.loads(done.stdout)
    assert scored["n_test"] == 6 and {"wer", "cer"} <= set(scored["metrics"])
    assert scored["metrics"]["wer"] <= 0.5  # the untrained model scores 1.0 (it says nothing, or nonsense)
    zero_shot = scored["baselines"]["pretrained, not fine-tuned"]  # the backbone it came from, on the same clips
    assert zero_shot["wer"] > scored["metrics"]["wer"] + 0.3
    clip = str(fresh / "s40.wav")
    done = headstart("predict", str(out), clip, "--format", "json")
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert len(rows) == 1 and rows[0]["input"].endswith("s40.wav") and rows[0]["output"] in ("going up", "going down")


@pytest.mark.slow
def test_real_whisper_tiny_en_fine_tunes_on_spoken_phrases(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = headstart("fit", "samples:spoken-phrases", "--task", "transcribe", "-b", "headstart:whisper-tiny-en",
                     "--max-train", "8", "--max-test", "4", "--epochs", "1", "--batch-size", "4", "--lr", "1e-4",
                     "--out", str(out), "--format", "json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["n_test"] == 4 and report["n_train"] == 8 and len(report["history"]) == 1
    assert report["metrics"]["wer"] < 1.0 and "pretrained, not fine-tuned" in report["baselines"]
    test_voices = {"en-us-f3", "en-scotland-m3", "en-caribbean", "en-westmidlands-f1"}
    assert all(e["where"].split("/")[1] in test_voices for e in report["examples"])  # held-out voices only
    assert (out / "model" / "model.safetensors").is_file()
