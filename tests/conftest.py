"""Shared fixtures. Nothing here downloads: hub loaders run offline against tiny models the tests build."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HEADSTART_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
