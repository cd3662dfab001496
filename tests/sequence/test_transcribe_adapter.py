"""The transcribe adapter on tiny Whisper and wav2vec2-CTC models built locally: targets and padding, seeded
augmentation, the three training strategies, learning (a tiny Whisper memorises two clips), save and load, long audio
in overlapping windows, and the errors a user can cause."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from headstart.errors import BackboneError, BundleError, DataError
from headstart.sequence import speech
from headstart.sequence.adapter import Pair, SequenceAdapter
from tests.sequence.tiny_speech import (
    build_tiny_ctc,
    build_tiny_whisper,
    chirp,
    one_thread,  # noqa: F401 (a fixture, used by name)
    write_clips,
)


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper"))


@pytest.fixture(scope="module")
def ctc_dir(tmp_path_factory) -> Path:
    return build_tiny_ctc(tmp_path_factory.mktemp("tiny-ctc"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    return write_clips(tmp_path_factory.mktemp("clips"), {"up": (0.8, 200, 1200), "down": (1.2, 1500, 300)})


def pairs_of(clips: dict[str, Path]) -> list[Pair]:
    return [Pair(clips["up"], "go up", "up.wav", "a"), Pair(clips["down"], "down we go now", "down.wav", "b")]


def test_whisper_targets_follow_the_prompt_and_pad_with_minus_100(whisper_dir, clips) -> None:
    adapter = speech.load_adapter(f"hf:{whisper_dir}", augment="none")
    assert isinstance(adapter, SequenceAdapter) and (adapter.kind, adapter.language) == ("whisper", None)
    batch = adapter.collate(pairs_of(clips), train=False)
    assert batch["input_features"].shape == (2, 16, 200)  # 16 mel bins, the model's 2 s window
    tok = adapter.processor.tokenizer
    labels = batch["labels"].tolist()
    assert labels[0][-1] == -100 and -100 not in labels[1]
    assert tok.decode([t for t in labels[1] if t >= 0]) == "<|notimestamps|> down we go now<|endoftext|>"
    decoder_input = adapter.model.model.decoder  # the model itself prepends its start token to the shifted labels
    assert decoder_input is not None and adapter.model.config.decoder_start_token_id == tok.convert_tokens_to_ids(
        "<|startoftranscript|>"
    )


def test_training_augmentation_is_seeded_and_changes_each_batch(whisper_dir, clips) -> None:
    pairs = pairs_of(clips)
    a, b = (speech.load_adapter(f"hf:{whisper_dir}", seed=3) for _ in range(2))
    first, again = a.collate(pairs, train=True), b.collate(pairs, train=True)
    torch.testing.assert_close(first["input_features"], again["input_features"])  # same seed, same draws
    clean = a.collate(pairs, train=False)["input_features"]
    assert not torch.allclose(first["input_features"], clean)
    assert not torch.allclose(a.collate(pairs, train=True)["input_features"], first["input_features"])  # next batch
    torch.testing.assert_close(first["labels"], clean["labels"] if isinstance(clean, dict) else first["labels"])


@pytest.mark.parametrize("strategy", ["full", "decoder", "lora"])
def test_strategies_choose_what_trains(whisper_dir, strategy) -> None:
    adapter = speech.load_adapter(f"hf:{whisper_dir}")
    adapter.select_trainable(strategy)
    trains = {n for n, p in adapter.model.named_parameters() if p.requires_grad}
    encoder = {n for n in trains if ".encoder." in n}
    if strategy == "full":
        assert encoder and any(".decoder." in n for n in trains)
    elif strategy == "decoder":
        assert not encoder and any(".decoder." in n for n in trains)
    else:
        assert trains and all("lora_" in n for n in trains)


@pytest.mark.usefixtures("one_thread")
def test_a_tiny_whisper_learns_two_clips_and_comes_back_from_its_folder(whisper_dir, clips, tmp_path) -> None:
    adapter = speech.load_adapter(f"hf:{whisper_dir}", augment="none")
    pairs = pairs_of(clips)
    adapter.select_trainable("full")
    optimizer = torch.optim.AdamW([p for p in adapter.model.parameters() if p.requires_grad], lr=3e-3)
    adapter.model.train()
    batch = adapter.collate(pairs, train=True)  # augment="none": every step would see the same batch
    for _ in range(100):
        loss = adapter.model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    assert loss.item() < 0.1
    sources = [p.source for p in pairs]
    assert adapter.generate(sources, max_length=20) == ["go up", "down we go now"]

    entries = adapter.save(tmp_path)
    assert (tmp_path / "model" / "model.safetensors").is_file() and not list(tmp_path.rglob("*.bin"))
    back = speech.load_saved(tmp_path, {"adapter": entries, "backbone": {"spec": "hf:tiny"}})
    assert back.generate(sources, max_length=20) == ["go up", "down we go now"]
    waves = [speech.read_wave(s, "clip") for s in sources]  # waveforms work as sources too
    assert back.generate(waves, max_length=20) == ["go up", "down we go now"]


@pytest.mark.parametrize("which", ["whisper", "ctc"])
def test_random_init_keeps_the_architecture_and_not_the_weights(which, whisper_dir, ctc_dir) -> None:
    where = whisper_dir if which == "whisper" else ctc_dir
    trained, scratch = speech.load_adapter(f"hf:{where}"), speech.load_adapter(f"hf:{where}", random_init=True)
    a, b = trained.model.state_dict(), scratch.model.state_dict()
    assert a.keys() == b.keys() and any(not torch.equal(a[k], b[k]) for k in a)
    assert scratch.generate([chirp(0.5, 200, 800)], max_length=3)[0] is not None


def test_long_audio_is_cut_into_overlapping_windows_and_joined() -> None:
    wave = np.zeros(int(5.0 * speech.SAMPLE_RATE), np.float32)
    chunks = speech.split_chunks(wave, 2.0, 0.5)
    assert [len(c) / speech.SAMPLE_RATE for c in chunks] == [2.0, 2.0, 2.0]  # starts at 0, 1.5, 3.0 s
    assert speech.split_chunks(wave[: speech.SAMPLE_RATE], 2.0, 0.5)[0] is not None
    assert (
        speech.join_chunks(["the cat sat on", "Sat on the mat.", "mat and slept"])
        == "the cat sat on the mat. and slept"
    )
    assert speech.join_chunks(["one two", "three"]) == "one two three"


def test_generate_handles_audio_longer_than_the_window(whisper_dir) -> None:
    adapter = speech.load_adapter(f"hf:{whisper_dir}")
    calls = []
    original = adapter._decode
    adapter._decode = lambda waves, beams, n: calls.append(len(waves)) or original(waves, beams, n)
    out = adapter.generate([chirp(4.5, 200, 1000), chirp(1.0, 300, 600)], max_length=3)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)
    assert sum(calls) == 4  # 4.5 s in 2 s windows with 0.5 s overlap: 3 windows, plus the short clip


def test_ctc_models_transcribe_greedily_and_train(ctc_dir, clips, tmp_path) -> None:
    adapter = speech.load_adapter(f"hf:{ctc_dir}")
    assert adapter.kind == "ctc" and adapter.language is None
    batch = adapter.collate(pairs_of(clips), train=True)
    tok = adapter.processor.tokenizer
    assert tok.decode([t for t in batch["labels"][1].tolist() if t >= 0]) == "DOWN WE GO NOW"  # its vocabulary's case
    assert "attention_mask" in batch and batch["input_values"].shape[0] == 2
    adapter.select_trainable("full")
    loss = adapter.model(**batch).loss
    loss.backward()
    assert torch.isfinite(loss) and not any(
        p.requires_grad for p in adapter.model.wav2vec2.feature_extractor.parameters()
    )
    texts = adapter.generate([p.source for p in pairs_of(clips)])
    assert len(texts) == 2 and all(isinstance(t, str) and t == " ".join(t.split()) for t in texts)
    entries = adapter.save(tmp_path)
    back = speech.load_saved(tmp_path, {"adapter": entries})
    assert back.generate([clips["up"]]) == adapter.generate([clips["up"]])  # one clip: no padding in the batch


def test_multilingual_whisper_is_told_its_language(tmp_path, clips) -> None:
    folder = build_tiny_whisper(tmp_path / "multi", multilingual=True)
    adapter = speech.load_adapter(f"hf:{folder}", augment="none")
    assert adapter.language == "en"
    tok = adapter.processor.tokenizer
    labels = adapter.collate(pairs_of(clips)[:1], train=False)["labels"][0].tolist()
    assert tok.convert_ids_to_tokens(labels[:3]) == ["<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    assert speech.load_adapter(f"hf:{folder}", language="fr").language == "fr"
    with pytest.raises(BackboneError, match="knows no language 'xx'"):
        speech.load_adapter(f"hf:{folder}", language="xx")


def test_errors_a_user_can_cause(whisper_dir, tiny_bert_dir, tmp_path) -> None:
    with pytest.raises(BackboneError, match="English-only model"):
        speech.load_adapter(f"hf:{whisper_dir}", language="fr")
    with pytest.raises(BackboneError, match="cannot transcribe"):
        speech.load_adapter(f"hf:{tiny_bert_dir}")
    with pytest.raises(BackboneError, match="a transcribe backbone is"):
        speech.load_adapter("timm:resnet18")
    with pytest.raises(BackboneError, match="ships these speech-to-text models"):
        speech.load_adapter("headstart:whisper-huge")
    with pytest.raises(BackboneError, match="augmentation must be one of"):
        speech.load_adapter(f"hf:{whisper_dir}", augment="wild")
    with pytest.raises(TypeError):
        speech.load_adapter(f"hf:{whisper_dir}", max_source_length=3)  # unknown options are not ignored
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really audio")
    adapter = speech.load_adapter(f"hf:{whisper_dir}")
    with pytest.raises(DataError, match="broken.wav: cannot read the audio"):
        adapter.generate([broken])
    with pytest.raises(BundleError, match="unknown speech model kind"):
        speech.load_saved(tmp_path, {"adapter": {"kind": "rnn"}})
