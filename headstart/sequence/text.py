"""Task "seq2seq": text to text with a pretrained encoder-decoder, or one warm-started from an encoder.

    load_adapter("hf:./tiny-marian")            # any transformers encoder-decoder (Marian, T5, BART...): a folder
                                                 # or a model in the Hugging Face cache; offline, no remote code
    load_adapter("st:all-MiniLM-L6-v2")          # warm start (Rothe et al., 2020): the encoder's weights on both
    load_adapter("hf:./bert-like")               # sides of an EncoderDecoderModel, cross-attention new
    load_adapter("st:all-MiniLM-L6-v2", random_init=True)   # the same architecture from random weights (baseline)

A warm-started decoder starts from the tokenizer's [CLS] and ends at [SEP]; targets are its word pieces then [SEP].
Saved as `model/` (config.json, model.safetensors, generation_config.json) and `tokenizer/` in the bundle folder.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from headstart.errors import BackboneError, BundleError
from headstart.sequence.adapter import Pair
from headstart.sequence.strategies import merge_lora, select_trainable

MODEL_DIR, TOKENIZER_DIR = "model", "tokenizer"
DEFAULT_BACKBONE = "st:all-MiniLM-L6-v2"
GENERATE_BATCH = 32


@dataclass
class TextAdapter:
    """A transformers seq2seq model and its tokenizer (see the module's docstring); `kind`: "hf" or "warm"."""

    spec: str
    model: Any
    tokenizer: Any
    kind: str
    max_source_length: int = 256
    max_target_length: int = 64
    task: str = "seq2seq"

    @property
    def zero_shot(self) -> bool:
        """Whether the untrained model's output is a baseline worth reporting (not for a warm start)."""
        return self.kind == "hf"

    def select_trainable(self, strategy: str) -> None:
        select_trainable(self.model, strategy, encoder=self.model.get_encoder())

    def collate(self, pairs: list[Pair], *, train: bool) -> dict[str, Any]:
        batch = self._sources([p.source for p in pairs])
        labels = self._targets([p.target or "" for p in pairs])
        batch["labels"] = labels.masked_fill(labels == self.tokenizer.pad_token_id, -100)
        return batch

    def generate(self, sources: list[Any], *, num_beams: int = 1, max_length: int | None = None) -> list[str]:
        import torch

        was_training = self.model.training
        self.model.eval()
        order = sorted(range(len(sources)), key=lambda i: len(str(sources[i])))  # similar lengths batch together
        out: list[str] = [""] * len(sources)
        with torch.inference_mode():
            for start in range(0, len(order), GENERATE_BATCH):
                chunk = order[start : start + GENERATE_BATCH]
                inputs = self._sources([str(sources[i]) for i in chunk])
                ids = self.model.generate(
                    **inputs, num_beams=num_beams, max_new_tokens=max_length or self.max_target_length, do_sample=False
                )
                for i, text in zip(chunk, self.tokenizer.batch_decode(ids, skip_special_tokens=True), strict=True):
                    out[i] = " ".join(text.split())
        self.model.train(was_training)
        return out

    def save(self, folder: Path) -> dict[str, Any]:
        merge_lora(self.model)
        with quiet_loading():
            self.model.save_pretrained(folder / MODEL_DIR, safe_serialization=True)
            self.tokenizer.save_pretrained(folder / TOKENIZER_DIR)
        return {"kind": self.kind, "max_source_length": self.max_source_length,
                "max_target_length": self.max_target_length}  # fmt: skip

    def _sources(self, texts: list[str]) -> dict[str, Any]:
        enc = self.tokenizer(
            texts, truncation=True, max_length=self.max_source_length, padding=True, return_tensors="pt"
        )
        device = next(self.model.parameters()).device
        return {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}

    def _targets(self, texts: list[str]) -> Any:
        import torch

        tok = self.tokenizer
        if self.kind == "hf":
            ids = tok(text_target=texts, truncation=True, max_length=self.max_target_length)["input_ids"]
        else:  # word pieces, no [CLS] (the decoder starts from it), then [SEP]
            pieces = tok(texts, add_special_tokens=False, truncation=True, max_length=self.max_target_length - 1)
            ids = [row + [tok.sep_token_id] for row in pieces["input_ids"]]
        width = max(len(row) for row in ids)
        padded = [row + [tok.pad_token_id] * (width - len(row)) for row in ids]
        return torch.tensor(padded, device=next(self.model.parameters()).device)


def load_adapter(
    spec: str,
    *,
    seed: int = 0,
    random_init: bool = False,
    max_source_length: int = 256,
    max_target_length: int = 64,
) -> TextAdapter:
    """A seq2seq adapter for `spec` (`hf:NAME_OR_PATH` or `st:NAME_OR_PATH`); see the module's docstring."""
    import torch

    from headstart.backbones.hf_source import quiet_transformers

    quiet_transformers()
    where, is_st = _resolve(spec)
    config = _config(spec, where)
    warm = is_st or not getattr(config, "is_encoder_decoder", False)
    torch.manual_seed(seed)
    try:
        with quiet_loading():
            model = _warm_start(where, random_init) if warm else _seq2seq(where, config, random_init)
            tokenizer = _tokenizer(where)
    except Exception as exc:
        raise BackboneError(f"{spec}: cannot build a seq2seq model from {where}: {_reason(exc)}") from None
    if warm:
        _set_special_tokens(model, tokenizer)
        # transformers warns on every forward with labels that its loss changed in v4.12 (years ago): not news
        warnings.filterwarnings("ignore", message="Version v4.12.0 introduces", category=FutureWarning)
    return TextAdapter(spec, model, tokenizer, "warm" if warm else "hf", max_source_length, max_target_length)


def load_saved(folder: Path, manifest: dict[str, Any]) -> TextAdapter:
    """The adapter a bundle folder holds (written by `TextAdapter.save`)."""
    import transformers

    entries = manifest.get("adapter") or {}
    kind = entries.get("kind")
    if kind not in ("hf", "warm"):
        raise BundleError(f"{folder}: unknown seq2seq model kind {kind!r} in headstart.json")
    cls = transformers.AutoModelForSeq2SeqLM if kind == "hf" else transformers.EncoderDecoderModel
    kwargs = {"local_files_only": True, "trust_remote_code": False}
    try:
        with quiet_loading():
            model = cls.from_pretrained(str(folder / MODEL_DIR), **kwargs)
            tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder / TOKENIZER_DIR), **kwargs)
    except Exception as exc:
        raise BundleError(f"{folder}: cannot load the saved seq2seq model: {_reason(exc)}") from None
    model.eval()
    return TextAdapter(
        manifest.get("backbone", {}).get("spec", str(folder)),
        model,
        tokenizer,
        kind,
        int(entries.get("max_source_length", 256)),
        int(entries.get("max_target_length", 64)),
    )


@contextmanager
def quiet_loading() -> Iterator[None]:
    """No per-tensor loading report (a warm start leaves the cross-attention MISSING on purpose)."""
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging

    before, bars_off = logging.get_verbosity(), are_progress_bars_disabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    disable_progress_bars()
    try:
        yield
    finally:
        logging.set_verbosity(before)
        if not bars_off:
            enable_progress_bars()


def _resolve(spec: str) -> tuple[str, bool]:
    prefix, _, name = spec.partition(":")
    if prefix not in ("hf", "st") or not name:
        raise BackboneError(
            f"{spec}: a seq2seq backbone is hf:NAME_OR_PATH (an encoder-decoder, or an encoder to warm-start from) "
            "or st:NAME_OR_PATH (a sentence encoder to warm-start from)"
        )
    if prefix == "hf":
        if name.startswith((".", "/", "~")) and not Path(name).expanduser().is_dir():
            raise BackboneError(f"{spec}: no such folder ({Path(name).expanduser()})")
        return str(Path(name).expanduser()) if name.startswith("~") else name, False
    from headstart.backbones.st_source import resolve

    where = Path(resolve(name))
    if where.is_dir() and not (where / "config.json").is_file():
        found = sorted(p.parent for p in where.glob("*/config.json"))  # the transformer module's own folder
        where = found[0] if found else where
    return str(where), True


def _config(spec: str, where: str) -> Any:
    import transformers

    from headstart.backbones.registry import offline

    local = Path(where).exists()
    try:
        return transformers.AutoConfig.from_pretrained(
            where, local_files_only=offline() or local, trust_remote_code=False
        )
    except Exception as exc:
        raise BackboneError(f"{spec}: cannot load its configuration: {_reason(exc)}") from None


def _seq2seq(where: str, config: Any, random_init: bool) -> Any:
    import transformers

    if random_init:
        return transformers.AutoModelForSeq2SeqLM.from_config(config)
    return transformers.AutoModelForSeq2SeqLM.from_pretrained(where, **_kwargs(where))


def _warm_start(where: str, random_init: bool) -> Any:
    import transformers

    if random_init:
        enc = transformers.AutoConfig.from_pretrained(where, **_kwargs(where))
        config = transformers.EncoderDecoderConfig.from_encoder_decoder_configs(enc, enc)
        return transformers.EncoderDecoderModel(config=config)
    sides = {f"{side}_{k}": v for side in ("encoder", "decoder") for k, v in _kwargs(where).items()}
    return transformers.EncoderDecoderModel.from_encoder_decoder_pretrained(where, where, **sides)


def _tokenizer(where: str) -> Any:
    import transformers

    return transformers.AutoTokenizer.from_pretrained(where, **_kwargs(where))


def _kwargs(where: str) -> dict[str, Any]:
    from headstart.backbones.registry import offline

    return {"local_files_only": offline() or Path(where).exists(), "trust_remote_code": False}


def _set_special_tokens(model: Any, tokenizer: Any) -> None:
    """The decoder starts from [CLS] (or BOS), stops at [SEP] (or EOS) and pads with the tokenizer's pad token."""
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    if start is None or end is None or tokenizer.pad_token_id is None:
        raise BackboneError("a warm-started encoder-decoder needs a tokenizer with start, end and padding tokens")
    if tokenizer.sep_token_id is None:
        tokenizer.sep_token = tokenizer.eos_token
    for cfg in (model.config, model.generation_config):
        cfg.decoder_start_token_id, cfg.eos_token_id, cfg.pad_token_id = start, end, tokenizer.pad_token_id
    model.config.vocab_size = model.config.decoder.vocab_size


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
