"""Sequence tasks: speech to text (`transcribe`) and text to text (`seq2seq`), by transfer from pretrained models.

`adapter.py` is the contract between a task and the task-agnostic parts (data, training loop, saved bundle, metrics):
each task supplies a `SequenceAdapter`; the training loop, the bundle and the recipe (`headstart.sequencing`) work
on any adapter. Heavy libraries (torch, transformers, jiwer, sacrebleu) are imported lazily, inside the modules.
"""

from __future__ import annotations

from types import ModuleType

TASKS: tuple[str, ...] = ("transcribe", "seq2seq")
TASK_MODULES: dict[str, str] = {"transcribe": "headstart.sequence.speech", "seq2seq": "headstart.sequence.text"}


def task_module(task: str) -> ModuleType:
    """The module of `task`, exposing `load_adapter(spec, *, seed=0, **options)` and `load_saved(folder, manifest)`
    (see `headstart.sequence.adapter`)."""
    import importlib

    from headstart.errors import HeadstartError

    if task not in TASK_MODULES:
        raise HeadstartError(f"task must be one of {', '.join(TASKS)}, not {task!r}")
    return importlib.import_module(TASK_MODULES[task])


__all__ = ["TASKS", "TASK_MODULES", "task_module"]
