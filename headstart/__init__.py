"""headstart: pretrained deep models and transfer learning, made practical.

`import headstart` is fast: the API and everything heavy behind it (torch, timm, transformers) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it; each module is imported on first use
_EXPORTS = {
    **dict.fromkeys(
        (
            "fit",
            "predict",
            "predict_rows",
            "evaluate",
            "embed",
            "load",
            "list_backbones",
            "load_dataset",
            "default_backbone",
        ),
        "headstart.api",
    ),
    "quickstart": "headstart.demo",
    "pretrain": "headstart.pretrain.run",
    **dict.fromkeys(("rank", "diagnose"), "headstart.api"),
}
__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'headstart' has no attribute {name!r}")
