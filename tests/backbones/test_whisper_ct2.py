"""The CTranslate2 Whisper reader: a tiny Whisper written by CTranslate2's own converter comes back tensor for tensor;
a file shipped in parts reads as one; damaged files are named errors; a shipped name converts once into the cache.
The slow set checks the real tiny.en against CTranslate2 itself (encoder output, greedy tokens) and reads base."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from headstart.backbones import whisper_ct2
from headstart.errors import BackboneError
from tests.sequence.tiny_speech import build_tiny_whisper, chirp

ct2_converters = pytest.importorskip("ctranslate2.converters")


@pytest.fixture(scope="module")
def tiny_hf(tmp_path_factory) -> Path:
    return build_tiny_whisper(tmp_path_factory.mktemp("tiny-whisper-hf"))


@pytest.fixture(scope="module")
def tiny_ct2(tiny_hf, tmp_path_factory) -> Path:
    """The tiny Whisper as faster-whisper packages ship one: CTranslate2's converter output plus tokenizer.json."""
    out = tmp_path_factory.mktemp("tiny-whisper-ct2") / "model"
    ct2_converters.TransformersConverter(str(tiny_hf)).convert(str(out))
    shutil.copy(tiny_hf / "tokenizer.json", out / "tokenizer.json")
    return out


def read(*parts: Path) -> whisper_ct2.Ct2Model:
    with whisper_ct2.ChainedFiles(parts) as stream:
        return whisper_ct2.read_ct2(stream)


def test_the_reader_gives_back_every_tensor_ctranslate2_wrote(tiny_hf, tiny_ct2) -> None:
    from transformers import WhisperForConditionalGeneration

    original = WhisperForConditionalGeneration.from_pretrained(tiny_hf).state_dict()
    ct2 = read(tiny_ct2 / "model.bin")
    assert ct2.spec == "WhisperSpec" and ct2.aliases["decoder/projection/weight"] == "decoder/embeddings/weight"
    assert len(ct2.aliases) > 1  # CTranslate2 also aliases equal tensors (a fresh model's zero biases, unit norms)
    state, sizes = whisper_ct2.whisper_state_dict(ct2)
    assert sorted(state) == sorted(original)  # no missing, no unexpected key
    for name, tensor in original.items():
        assert torch.equal(state[name].float(), tensor), name  # float32 in, float32 out: exact
    assert sizes["encoder_layers"] == 2 and sizes["decoder_layers"] == 1 and sizes["num_mel_bins"] == 16


def test_a_model_shipped_in_parts_reads_as_one_stream(tiny_ct2, tmp_path) -> None:
    blob = (tiny_ct2 / "model.bin").read_bytes()
    cut = len(blob) // 2 + 3  # in the middle of some tensor's bytes
    (tmp_path / "part1").write_bytes(blob[:cut])
    (tmp_path / "part2").write_bytes(blob[cut:])
    whole, parts = read(tiny_ct2 / "model.bin"), read(tmp_path / "part1", tmp_path / "part2")
    assert list(parts.variables) == list(whole.variables)
    assert all(torch.equal(parts.variables[k], v) for k, v in whole.variables.items())


def test_damaged_or_foreign_files_are_named_errors(tiny_ct2, tmp_path) -> None:
    blob = (tiny_ct2 / "model.bin").read_bytes()
    (tmp_path / "short.bin").write_bytes(blob[: len(blob) // 3])
    with pytest.raises(BackboneError, match="ends early"):
        read(tmp_path / "short.bin")
    (tmp_path / "old.bin").write_bytes((5).to_bytes(4, "little") + blob[4:])
    with pytest.raises(BackboneError, match="binary version 5"):
        read(tmp_path / "old.bin")
    (tmp_path / "noise.bin").write_bytes(blob[:4] + b"\x08\x00" + bytes([0xFF] * 64))
    with pytest.raises(BackboneError, match="not UTF-8"):
        read(tmp_path / "noise.bin")


@pytest.fixture
def shipped_tiny(tiny_ct2, tmp_path, monkeypatch) -> Path:
    """`headstart:whisper-tiny-en` served from a copy of the tiny CTranslate2 folder (a stand-in package)."""
    package = tmp_path / "package"
    shutil.copytree(tiny_ct2, package)
    monkeypatch.setattr(whisper_ct2, "package_files", lambda name: ([package / "model.bin"], package))
    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path / "cache"))
    return package


def test_a_shipped_name_converts_once_into_the_cache_and_matches_the_original(tiny_hf, shipped_tiny) -> None:
    from transformers import WhisperForConditionalGeneration

    folder = whisper_ct2.converted_folder("whisper-tiny-en")
    assert folder.parent.parent == Path(os.environ["HEADSTART_CACHE"])
    assert not list(folder.rglob("*.bin")) and not list(folder.rglob("*.pt"))  # safetensors and JSON only
    source = json.loads((folder / "headstart-source.json").read_text())
    assert source["parameters"] == sum(p.numel() for p in WhisperForConditionalGeneration(
        WhisperForConditionalGeneration.from_pretrained(tiny_hf).config).parameters())  # fmt: skip
    written = (folder / "model.safetensors").stat().st_mtime_ns
    assert whisper_ct2.converted_folder("whisper-tiny-en") == folder  # read from the cache, not converted again
    assert (folder / "model.safetensors").stat().st_mtime_ns == written

    a, b = (WhisperForConditionalGeneration.from_pretrained(f).eval() for f in (tiny_hf, folder))
    features, tokens = torch.randn(1, 16, 200), torch.tensor([[1, 2, 3]])
    with torch.inference_mode():
        torch.testing.assert_close(
            a(features, decoder_input_ids=tokens).logits, b(features, decoder_input_ids=tokens).logits
        )

    with open(shipped_tiny / "config.json", "a") as f:  # other source bytes: another key, another folder
        f.write("\n")
    assert whisper_ct2.converted_folder("whisper-tiny-en") != folder


def test_a_shipped_whisper_embeds_audio_as_a_classification_backbone(shipped_tiny) -> None:
    from headstart.backbones import create_backbone

    bb = create_backbone("headstart:whisper-tiny-en")
    assert (bb.modality, bb.embed_dim) == ("audio", 32) and bb.weights_id.startswith("ct2-sha256:")
    batch = bb.collate([bb.prepare(chirp(0.5, 200, 900)), bb.prepare(chirp(1.5, 900, 200, seed=1))])
    with torch.inference_mode():
        x = bb.embed(batch)
    assert x.shape == (2, 32) and not torch.allclose(x[0], x[1])


def test_the_packages_are_listed_with_their_licence_and_size() -> None:
    from headstart.backbones import list_backbones

    rows = {r["spec"]: r for r in list_backbones()}
    for name in ("headstart:whisper-tiny-en", "headstart:whisper-base"):
        assert rows[name]["modality"] == "audio" and rows[name]["offline"] is True
        assert "MIT" in rows[name]["note"] and " MB" in rows[name]["note"]


# --- the real models -------------------------------------------------------------------------------------------------


def espeak_clip(tmp_path: Path, voice: str, text: str) -> np.ndarray:
    import subprocess

    from headstart.data.audio import read_audio

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")
    path = tmp_path / f"{voice}.wav"
    subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text], check=True)
    return read_audio(path, 16_000)


@pytest.mark.slow
def test_real_tiny_en_matches_ctranslate2_on_espeak_speech(tmp_path) -> None:
    """Same log-mel features into both: the encoders agree closely and greedy decoding gives the same tokens."""
    import ctranslate2
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    folder = whisper_ct2.converted_folder("whisper-tiny-en")
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    processor = WhisperProcessor.from_pretrained(folder)
    source = whisper_ct2.package_files("whisper-tiny-en")[1]
    reference = ctranslate2.models.Whisper(str(source), device="cpu", compute_type="float32", intra_threads=2)
    assert sum(p.numel() for p in model.parameters()) == 37_760_256
    phrases = {"en-us": "open the door please", "en-gb-x-rp": "we walk to school"}
    prompt = processor.tokenizer.convert_tokens_to_ids(["<|startoftranscript|>", "<|notimestamps|>"])
    for voice, text in phrases.items():
        features = processor.feature_extractor(espeak_clip(tmp_path, voice, text), sampling_rate=16_000,
                                               return_tensors="np").input_features  # fmt: skip
        with torch.inference_mode():
            ours = model.model.encoder(torch.from_numpy(features)).last_hidden_state.numpy()
            tokens = model.generate(torch.from_numpy(features), num_beams=1, max_new_tokens=40)[0].tolist()
        theirs = np.array(reference.encode(ctranslate2.StorageView.from_array(features), to_cpu=True))
        assert np.abs(ours - theirs).max() < 2e-3 * np.abs(theirs).max()
        result = reference.generate(ctranslate2.StorageView.from_array(features), [prompt], beam_size=1,
                                    max_length=40, return_no_speech_prob=False)[0].sequences_ids[0]  # fmt: skip
        assert [t for t in tokens if t < processor.tokenizer.eos_token_id] == result, voice


@pytest.mark.slow
def test_real_base_is_read_from_its_two_packages(tmp_path) -> None:
    from transformers import WhisperForConditionalGeneration

    folder = whisper_ct2.converted_folder("whisper-base")
    source = json.loads((folder / "headstart-source.json").read_text())
    assert source["parts"] == ["model.bin.part1", "model.bin.part2"] and source["parameters"] == 72_593_920
    model = WhisperForConditionalGeneration.from_pretrained(folder)
    assert model.generation_config.is_multilingual and "<|en|>" in model.generation_config.lang_to_id
