"""Fine-tuning: train backbone and heads together on the training engine, with the remedies for overfitting.

`loop.train(fabric, backbone, train, val, config)` returns the trained network and its history; the recipe that
loads the data, builds the `TransferModel`, scores and saves it is `headstart.finetuning` (`finetune`, `lr_find`).
Settings live in `FinetuneConfig` (one dataclass per concern). Names load on first use, so the CLI can register its
commands without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "train": "headstart.finetune.loop",
    "TrainResult": "headstart.finetune.loop",
    "FinetuneConfig": "headstart.finetune.config",
    "STRATEGIES": "headstart.finetune.config",
    "option_names": "headstart.finetune.config",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'headstart.finetune' has no attribute {name!r}")
