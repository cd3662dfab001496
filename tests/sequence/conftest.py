"""Sequence fixtures: a tiny Marian-style translation model and a toy translation table, built and saved locally."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

SOURCE_WORDS = "one two three four five six seven eight nine ten".split()
TARGET_WORDS = "un deux trois quatre cinq six sept huit neuf dix".split()
SPECIALS = ["<pad>", "</s>", "<unk>"]


def toy_pairs(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Sentences of 2-4 number words and their word-by-word "translation"."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        idx = [rng.randrange(len(SOURCE_WORDS)) for _ in range(rng.randint(2, 4))]
        out.append((" ".join(SOURCE_WORDS[i] for i in idx), " ".join(TARGET_WORDS[i] for i in idx)))
    return out


@pytest.fixture(scope="session")
def tiny_marian_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_marian(tmp_path_factory.mktemp("tiny-marian"))


def build_tiny_marian(folder: Path) -> Path:
    """A 1-layer, 32-wide random MarianMT model with a word-level tokenizer over the toy vocabulary."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import MarianConfig, MarianMTModel, PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(SPECIALS + sorted(set(SOURCE_WORDS + TARGET_WORDS)))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", vocab["</s>"])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    config = MarianConfig(
        vocab_size=len(vocab),
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_position_embeddings=64,
        pad_token_id=vocab["<pad>"],
        eos_token_id=vocab["</s>"],
        decoder_start_token_id=vocab["<pad>"],
        forced_eos_token_id=vocab["</s>"],
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    torch.manual_seed(1)  # not 0: the random-init baseline (seed 0) must differ from it
    MarianMTModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def toy_table(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CSV of 240 toy translation pairs (source, target) and one row without a target."""
    import csv

    path = tmp_path_factory.mktemp("toy-translation") / "pairs.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["source", "target"])
        writer.writerows([*toy_pairs(240), ("one two", "")])
    return path
