"""Fine-tuning: train backbone and heads together on Lightning Fabric, with the remedies for overfitting.

`finetune(data, backbone=..., strategy="gradual", epochs=3)` returns a TransferModel like `headstart.fit`;
`lr_find(...)` sweeps the learning rate and suggests one. Settings live in `FinetuneConfig` (one dataclass per
concern). Names load on first use, so the CLI can register its commands without importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "finetune": "headstart.finetune.run",
    "lr_find": "headstart.finetune.lr_range",
    "FinetuneConfig": "headstart.finetune.config",
    "STRATEGIES": "headstart.finetune.config",
    "option_names": "headstart.finetune.config",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'headstart.finetune' has no attribute {name!r}")
