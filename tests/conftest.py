"""Shared fixtures. Nothing here downloads: hub loaders run offline against tiny models the tests build."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HEADSTART_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# under pytest-xdist (the fast suite's default, `-n auto`) each worker takes its share of the cores, and the CLI
# subprocesses it starts inherit that: 2 workers of 2 torch threads on 2 cores ran the fast suite in 395 s, 2 workers
# of 1 thread in 314 s, one process of 2 threads in 468 s. Set before numpy and torch are imported; a value the
# user set stands.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT"):
    _threads = str(max(1, (os.cpu_count() or 1) // int(os.environ["PYTEST_XDIST_WORKER_COUNT"])))
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, _threads)

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

WORDS = (
    "the a market shares fell rose profit bank team match goal won lost player film music award star "
    "election minister vote party government phone software internet computer users game"
).split()


MAX_WORKERS = 4  # `-n auto` on a many-core machine: each worker builds the session's tiny models and imports torch


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: without the plugin, nothing calls it
def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """Workers for `-n auto` (pyproject's default): one per core, at most MAX_WORKERS, for the fast suite; none (one
    process) for a run that selects the slow tests (`-m slow`), whose real models use every core: on 2 workers the
    slow suite took 959 s against 904 s in one process, and a table lost its width."""
    marks = str(config.option.markexpr or "")
    if "slow" in marks.replace("not slow", ""):
        return 0
    return max(1, min(MAX_WORKERS, os.cpu_count() or 1))


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


def noise_images(n: int, shape: tuple[int, ...] = (20, 24, 3), seed: int = 0) -> list[np.ndarray]:
    """`n` uint8 images of random pixels (grey for a 2-D `shape`): cheap, distinct inputs for image backbones."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(n)]


def digit_images(per_class: int, seed: int | None = None) -> tuple[list[np.ndarray], list[str]]:
    """scikit-learn's 8x8 digits as uint8 images with string labels, `per_class` of each digit: the first ones of
    each class, or (with `seed`) a random draw."""
    from sklearn.datasets import load_digits

    d = load_digits()
    rng = np.random.default_rng(seed)
    pick = [np.flatnonzero(d.target == k) for k in range(10)]
    idx = np.concatenate([p[:per_class] if seed is None else rng.choice(p, per_class, replace=False) for p in pick])
    images = (d.images[idx] * (255 / 16)).astype(np.uint8)
    return list(images), [str(t) for t in d.target[idx]]


@pytest.fixture(scope="session")
def digits_small() -> tuple[np.ndarray, np.ndarray]:
    """120 scikit-learn digits (12 per class) as uint8 images, with string labels. Shared by the session: copy
    before changing them."""
    images, labels = digit_images(12)
    return np.stack(images), np.array(labels, dtype="<U21")  # as wide as int labels' astype(str): room to relabel


@pytest.fixture(scope="session")
def digit_features() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All 1797 digits as 64 float32 features with string labels, split 70/30 stratified (read-only arrays):
    (x_train, x_test, y_train, y_test), as heads get them from a backbone. Shared by the session: copy before
    changing them."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    xtr, xte, ytr, yte = train_test_split(
        x.astype(np.float32), y.astype(str), test_size=0.3, random_state=0, stratify=y
    )
    return xtr, xte, ytr, yte


@pytest.fixture(scope="session")
def digits_folder(tmp_path_factory: pytest.TempPathFactory) -> str:
    """60 digits (6 per class) as PNG files, one sub-folder per class: a data source a subprocess can load."""
    from PIL import Image

    folder = tmp_path_factory.mktemp("digits-png")
    images, labels = digit_images(6)
    for i, (image, label) in enumerate(zip(images, labels)):
        (folder / label).mkdir(exist_ok=True)
        Image.fromarray(image).save(folder / label / f"{i:03d}.png")
    return str(folder)


def tone(freq: float, seconds: float = 0.5, rate: int = 8000, seed: int = 0, channels: int = 1) -> np.ndarray:
    """A sine at `freq` Hz with a little noise, silence before and after; (samples,) or (samples, channels)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.5 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(len(t))
    wave = np.concatenate([np.zeros(rate // 10), wave, np.zeros(rate // 10)]).astype(np.float32)
    return wave if channels == 1 else np.stack([wave] * channels, axis=1)


def write_wav(path: Path, wave: np.ndarray, rate: int = 8000, subtype: str | None = None) -> Path:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), wave, rate, subtype=subtype)
    return path


@pytest.fixture(scope="session")
def tones_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tones/<low|high>/<i>.wav|.flac: 10 clips per class at 8 kHz (resampled to 16 kHz by the backbones)."""
    root = tmp_path_factory.mktemp("tones") / "tones"
    for label, base in (("low", 300.0), ("high", 2000.0)):
        for i in range(10):
            ext = ".flac" if i % 3 == 0 else ".wav"
            write_wav(root / label / f"{i}{ext}", tone(base + 40 * i, seconds=0.3 + 0.05 * i, seed=i))
    return root


@pytest.fixture(scope="session")
def tiny_audio_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Random tiny wav2vec2, HuBERT and Whisper models with their feature extractors, saved as transformers folders."""
    import torch
    from transformers import (
        HubertConfig,
        HubertModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    root = tmp_path_factory.mktemp("tiny-audio")
    small = {
        "hidden_size": 32,
        "num_hidden_layers": 2,
        "num_attention_heads": 2,
        "intermediate_size": 64,
        "conv_dim": (16, 16, 16),
        "conv_stride": (5, 4, 4),
        "conv_kernel": (10, 4, 4),
        "num_conv_pos_embeddings": 16,
        "num_conv_pos_embedding_groups": 2,
    }
    torch.manual_seed(1)
    Wav2Vec2Model(Wav2Vec2Config(**small)).save_pretrained(root / "wav2vec2")
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(root / "wav2vec2")
    HubertModel(HubertConfig(**small)).save_pretrained(root / "hubert")
    Wav2Vec2FeatureExtractor().save_pretrained(root / "hubert")
    whisper = WhisperConfig(
        d_model=32,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=16,
        max_source_positions=100,  # 2 s of 10 ms frames, halved by the encoder's stride-2 convolution
        max_target_positions=16,
        vocab_size=64,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    WhisperModel(whisper).save_pretrained(root / "whisper")
    WhisperFeatureExtractor(feature_size=16, chunk_length=2).save_pretrained(root / "whisper")
    return {name: root / name for name in ("wav2vec2", "hubert", "whisper")}


@pytest.fixture(scope="session")
def tiny_vit_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random ViT on 32 px images with its image processor, saved as a transformers folder."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path_factory.mktemp("tiny-vit")
    torch.manual_seed(1)
    config = ViTConfig(
        image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64
    )
    ViTModel(config).save_pretrained(folder)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(folder)
    return folder


TIMM_TINY = "test_efficientnet"  # timm's own test model: a few thousand parameters, with a pretrained entry


@pytest.fixture(scope="session")
def timm_hub_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A Hugging Face cache folder holding 'pretrained' weights for timm:test_efficientnet (random, seeded), laid
    out as `hf download` leaves it, so `timm:` runs its real cached-weights path offline. Point
    `huggingface_hub.constants.HF_HUB_CACHE` at it (monkeypatch) to use it."""
    import timm
    import torch
    from huggingface_hub.file_download import repo_folder_name
    from safetensors.torch import save_file

    repo = timm.models.get_pretrained_cfg(TIMM_TINY).hf_hub_id
    root = tmp_path_factory.mktemp("hf-cache")
    revision = "0" * 40
    snapshot = root / repo_folder_name(repo_id=repo, repo_type="model") / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(revision)
    torch.manual_seed(7)
    model = timm.create_model(TIMM_TINY, pretrained=False)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snapshot / "model.safetensors"))
    return root


@pytest.fixture(scope="session")
def text_model_dir(tiny_st_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved probe on the tiny sentence encoder, 40 texts in two topics (business, sport): the folder `news`,
    shared by the export and service tests."""
    import headstart as hs
    from headstart.data import from_arrays

    texts, labels = make_texts(40)
    out = tmp_path_factory.mktemp("text-model") / "news"
    hs.fit(from_arrays(texts, labels), backbone=f"st:{tiny_st_dir}", out=out, strategy="probe", progress=False,
           baseline=False)  # fmt: skip
    return out
