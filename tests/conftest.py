"""Shared fixtures. Nothing here downloads: hub loaders run offline against tiny models the tests build."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HEADSTART_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

WORDS = (
    "the a market shares fell rose profit bank team match goal won lost player film music award star "
    "election minister vote party government phone software internet computer users game"
).split()


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every test session gets its own feature cache, so tests never read or fill the user's."""
    path = tmp_path_factory.mktemp("headstart-cache")
    os.environ["HEADSTART_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random BERT with a hand-written WordPiece vocabulary, saved as a transformers folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS, *[f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"]]
    vocab += list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'")
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizerFast(vocab=str(folder / "vocab.txt"))  # transformers 5: `vocab`, not `vocab_file`
    torch.manual_seed(1)  # not 0: `?init=random` uses seed 0, and the two must differ
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_st_dir(tiny_bert_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT wrapped as a sentence-transformers model (mean pooling), saved as an ST folder."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.models import Pooling, Transformer

    folder = tmp_path_factory.mktemp("tiny-st")
    word = Transformer(str(tiny_bert_dir), max_seq_length=64)
    model = SentenceTransformer(modules=[word, Pooling(word.get_embedding_dimension(), "mean")], device="cpu")
    model.save(str(folder))
    return folder


def make_texts(n: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Two-topic toy texts: 'business' sentences and 'sport' sentences, separable by their words."""
    rng = np.random.default_rng(seed)
    business = ["market", "shares", "profit", "bank", "fell", "rose"]
    sport = ["team", "match", "goal", "won", "lost", "player"]
    texts, labels = [], []
    for i in range(n):
        topic = ["business", "sport"][i % 2]
        words = rng.choice(business if topic == "business" else sport, size=8)
        texts.append("the " + " ".join(words))
        labels.append(topic)
    return texts, labels


@pytest.fixture(scope="session")
def digits_small() -> tuple[np.ndarray, np.ndarray]:
    """120 scikit-learn digits (12 per class) as uint8 images, with string labels."""
    from sklearn.datasets import load_digits

    d = load_digits()
    idx = np.concatenate([np.flatnonzero(d.target == k)[:12] for k in range(10)])
    images = (d.images[idx] * (255 / 16)).astype(np.uint8)
    return images, d.target[idx].astype(str)
