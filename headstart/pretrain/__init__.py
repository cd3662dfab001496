"""Pretraining: build or adapt a backbone from unlabelled data — autoencoder, gan, contrastive (SimCLR), masked (MLM).

`pretrain(data, method="contrastive", out="runs/simclr")` trains and saves a folder that `fit`, `embed` and `rank`
accept as `local:runs/simclr`. `METHODS` maps each method name to its module (one file per objective); the contract
between the framework and a method is in `headstart.pretrain.common`. Names load on first use, so `import headstart`
stays free of torch.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

_EXPORTS = {
    "pretrain": "headstart.pretrain.run",
    "METHODS": "headstart.pretrain.registry",
    "PretrainResult": "headstart.pretrain.run",
    "PretrainJob": "headstart.pretrain.common",
    "Pretrained": "headstart.pretrain.common",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'headstart.pretrain' has no attribute {name!r}")


class _CallablePackage(types.ModuleType):
    """`headstart.pretrain(...)` runs `pretrain(...)`: once this subpackage is imported, Python binds the name
    `pretrain` on `headstart` to it, shadowing the function that `headstart.pretrain` exports."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from headstart.pretrain.run import pretrain

        return pretrain(*args, **kwargs)


sys.modules[__name__].__class__ = _CallablePackage
