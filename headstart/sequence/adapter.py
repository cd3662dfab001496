"""The contract between a sequence task and the task-agnostic parts: paired data and a `SequenceAdapter`.

A `PairSet` is the sequence analogue of `headstart.data.Dataset`: one `Pair` per usable item (its source — an audio
file path or waveform for `transcribe`, a string for `seq2seq` — its target text, where it came from, an optional
group such as the speaker's voice), plus every skipped item as a `DataIssue`, so nothing is dropped silently.

A `SequenceAdapter` wraps one pretrained model with what it needs to train and generate: the training loop calls
`select_trainable`, then `collate(pairs, train=True)` and `model(**batch).loss` per step; evaluation and `predict`
call `generate`; the bundle calls `save`, and the task module's `load_saved` reads it back.

Each task has one module, `headstart.sequence.<module>` (`TASK_MODULES` in `headstart.sequence`: "seq2seq" ->
`text`, "transcribe" -> `speech`), exposing two loaders the recipe dispatches to:

    load_adapter(spec: str, *, seed: int = 0, **options) -> SequenceAdapter    # a pretrained model, ready to train
    load_saved(folder: Path, manifest: dict) -> SequenceAdapter                 # one saved by `save`

`options` are task-specific keywords (e.g. `random_init=True` for the baseline, `max_source_length`); a loader
ignores none silently: an unknown option is a TypeError. `manifest` is the bundle's `headstart.json`; the entries
`save` returned are under `manifest["adapter"]`. Errors a user can cause are `BackboneError`/`BundleError`.
A task module may also set `DEFAULT_BACKBONE` (the spec used when none is given), and an adapter may set
`zero_shot = False` when its untrained output is no baseline worth reporting (a warm-started decoder: its
cross-attention is new); otherwise the recipe reports the pretrained model before fine-tuning beside the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from headstart.data.dataset import DataIssue


@dataclass(frozen=True)
class Pair:
    """One source and its target text. `where` names it in messages ("clips.csv row 12", "phrases/anna/3.wav")."""

    source: Any
    target: str | None
    where: str
    group: str | None = None
    split: str | None = None  # "train" or "test" where the data fixes its own split (a sample set)


@dataclass
class PairSet:
    """The usable pairs of one data source, and every skipped item with the reason."""

    task: str
    pairs: list[Pair]
    source: str
    issues: list[DataIssue] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def targets(self) -> list[str | None]:
        return [p.target for p in self.pairs]


@runtime_checkable
class SequenceAdapter(Protocol):
    """A pretrained sequence model, ready to fine-tune and generate. `model` is a `torch.nn.Module` whose
    `forward(**collate(...))` returns an output with `.loss` (Hugging Face convention: labels padded with -100)."""

    task: str  # "transcribe" or "seq2seq"
    spec: str  # the backbone it came from, e.g. "headstart:whisper-tiny-en", "hf:./tiny-marian"
    model: Any  # torch.nn.Module

    def select_trainable(self, strategy: str) -> None:
        """Freeze or wrap parameters for `strategy`: "full", "decoder" (encoder frozen) or "lora" (peft adapters)."""
        ...

    def collate(self, pairs: list[Pair], *, train: bool) -> dict[str, Any]:
        """Tensors for one batch: model inputs plus `labels`; `train=True` may augment (audio noise, speed...)."""
        ...

    def generate(self, sources: list[Any], *, num_beams: int = 1, max_length: int | None = None) -> list[str]:
        """The output text for each source (long audio is transcribed in chunks)."""
        ...

    def save(self, folder: Path) -> dict[str, Any]:
        """Write weights (safetensors) and configuration/tokenizer files into `folder`; return the manifest entries
        `load` needs. Never pickle."""
        ...
