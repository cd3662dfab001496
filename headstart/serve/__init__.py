"""The HTTP service for one model: Open Inference Protocol v2 (`/v2/...`), `/predict`, `/metrics`, a web page at
`/`; dynamic micro-batching behind them. `headstart serve MODEL` runs it; `create_app` builds it for tests."""

from __future__ import annotations

from headstart.serve.app import ServeConfig, create_app, serve
from headstart.serve.predictor import Predictor, load_predictor

__all__ = ["Predictor", "ServeConfig", "create_app", "load_predictor", "serve"]
