"""headstart: pretrained deep models and transfer learning, made practical.

`import headstart` is fast: the API and everything heavy behind it (torch, timm, transformers) load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = ("fit", "predict", "evaluate", "embed", "load", "backbones", "load_dataset", "default_backbone")
__all__ = [*_API, "quickstart", "__version__"]


def __getattr__(name: str) -> Any:
    if name in _API:
        return getattr(importlib.import_module("headstart.api"), name)
    if name == "quickstart":
        return importlib.import_module("headstart.quickstart").quickstart
    raise AttributeError(f"module 'headstart' has no attribute {name!r}")
