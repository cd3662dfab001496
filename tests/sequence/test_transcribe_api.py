"""Speech to text from Python: `hs.fit(..., task="transcribe")` on in-memory (waveform, transcript) pairs with a tiny
Whisper built locally, options that reach the adapter, prediction on waveforms and files, and the saved folder."""

from __future__ import annotations

from pathlib import Path

import pytest

import headstart as hs
from tests.sequence.tiny_speech import (
    build_tiny_whisper,
    chirp,
    one_thread,  # noqa: F401 (a fixture, used by name)
    write_clips,
)


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper-api"))


@pytest.mark.usefixtures("one_thread")
def test_fit_predict_save_and_load(whisper_dir: Path, tmp_path: Path) -> None:
    pairs = [(chirp(0.5 + 0.05 * i, 300 + 20 * i, 900, seed=i), "hello") for i in range(12)]
    out = tmp_path / "run"
    model = hs.fit(pairs, task="transcribe", backbone=f"hf:{whisper_dir}", epochs=10, lr=5e-3, batch_size=2,
                   augment="none", out=out, progress=False)  # fmt: skip
    assert model.task == "transcribe" and model.adapter.augment == "none"  # the option reached the adapter
    assert model.report["metrics"]["wer"] < model.report["baselines"]["pretrained, not fine-tuned"]["wer"]
    clip = write_clips(tmp_path / "clips", {"new": (0.7, 310, 880)})["new"]
    said = model.predict([chirp(0.6, 320, 900, seed=99)]) + model.predict([clip])
    assert said == ["hello", "hello"]
    assert hs.load(out).predict([clip]) == ["hello"]


def test_options_a_transcribe_model_does_not_take_are_refused(whisper_dir: Path) -> None:
    pairs = [(chirp(0.5, 300, 900), "hello")] * 4
    with pytest.raises(TypeError):
        hs.fit(pairs, task="transcribe", backbone=f"hf:{whisper_dir}", epochs=1, max_source_length=8, progress=False)
