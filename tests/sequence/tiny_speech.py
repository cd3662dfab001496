"""Tiny speech-to-text models for the fast tests, built and saved locally: a Whisper (32 wide, byte-level tokenizer
of 256 symbols plus Whisper's control tokens, 2 s windows) and a wav2vec2 CTC model with a character vocabulary."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

CONTROL = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|fr|>", "<|translate|>", "<|transcribe|>",
           "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>"]  # fmt: skip
RATE = 16_000


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread; two threads on a busy 2-core machine spin-wait on each other."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def whisper_tokenizer(folder: Path):
    """A WhisperTokenizer over the 256 byte-level symbols (no merges) and Whisper's control tokens, saved."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import WhisperTokenizer

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {symbol: i for i, symbol in enumerate(sorted(alphabet))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(CONTROL)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    return WhisperTokenizer(tokenizer_file=str(folder / "tokenizer.json"))


def build_tiny_whisper(folder: Path, *, seed: int = 1, multilingual: bool = False) -> Path:
    """A random 2-layer encoder / 1-layer decoder Whisper reading 16 mel bins of 2 s windows, as a transformers
    folder (config, safetensors, generation config, processor), like the real ones."""
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, WhisperProcessor

    from headstart.backbones.whisper_ct2 import generation_config, special_ids, whisper_config

    tokenizer = whisper_tokenizer(folder / "_tokenizer")
    ids = special_ids(tokenizer)
    sizes = {"vocab_size": len(tokenizer), "d_model": 32, "num_mel_bins": 16, "encoder_layers": 2,
             "decoder_layers": 1, "encoder_attention_heads": 2, "decoder_attention_heads": 2, "encoder_ffn_dim": 64,
             "decoder_ffn_dim": 64, "max_source_positions": 100, "max_target_positions": 64}  # fmt: skip
    config = whisper_config(sizes, ids)
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = generation_config(config, tokenizer, {"suppress_ids_begin": [ids["eot"]]})
    model.generation_config.is_multilingual = multilingual
    if multilingual:
        model.generation_config.lang_to_id = {"<|en|>": tokenizer.convert_tokens_to_ids("<|en|>"),
                                              "<|fr|>": tokenizer.convert_tokens_to_ids("<|fr|>")}  # fmt: skip
    model.save_pretrained(folder)
    extractor = WhisperFeatureExtractor(feature_size=16, chunk_length=2)
    WhisperProcessor(extractor, tokenizer).save_pretrained(folder)
    return folder


def build_tiny_ctc(folder: Path, *, seed: int = 1) -> Path:
    """A random 2-layer wav2vec2 CTC model over upper-case letters, '|' as the word delimiter."""
    import json

    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = {"<pad>": 0, "<unk>": 1, "|": 2, **{c: 3 + i for i, c in enumerate("ABCDEFGHIJKLMNOPQRSTUVWXYZ'")}}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(folder / "vocab.json"), pad_token="<pad>", unk_token="<unk>")
    extractor = Wav2Vec2FeatureExtractor(return_attention_mask=True)
    config = Wav2Vec2Config(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16), conv_stride=(5, 4, 4), conv_kernel=(10, 4, 4), num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2, pad_token_id=0, ctc_loss_reduction="mean",
    )  # fmt: skip
    torch.manual_seed(seed)
    Wav2Vec2ForCTC(config).save_pretrained(folder)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(folder)
    return folder


def chirp(seconds: float, f0: float, f1: float, seed: int = 0) -> np.ndarray:
    """A frequency sweep with a little noise: clips that differ from one another, at 16 kHz."""
    t = np.arange(int(seconds * RATE)) / RATE
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * seconds))
    noise = 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.4 * np.sin(phase) + noise).astype(np.float32)


def write_clips(folder: Path, specs: dict[str, tuple[float, float, float]]) -> dict[str, Path]:
    """WAV files from (seconds, f0, f1) per name."""
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, (name, (seconds, f0, f1)) in enumerate(specs.items()):
        out[name] = folder / f"{name}.wav"
        sf.write(str(out[name]), chirp(seconds, f0, f1, seed=i), RATE, subtype="PCM_16")
    return out
