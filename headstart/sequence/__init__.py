"""Sequence tasks: speech to text (`transcribe`) and text to text (`seq2seq`), by transfer from pretrained models.

`adapter.py` is the contract between a task and the task-agnostic parts (data, training loop, saved bundle, metrics):
each task supplies a `SequenceAdapter`; the training loop, the bundle and the recipe (`headstart.sequencing`) work
on any adapter. Heavy libraries (torch, transformers, jiwer, sacrebleu) are imported lazily, inside the modules.
"""

from __future__ import annotations

TASKS: tuple[str, ...] = ("transcribe", "seq2seq")

__all__ = ["TASKS"]
