"""Models and servers for the service's tests: a tiny text model and a tiny image model, fitted once per session;
servers in process (TestClient), on a live loopback port (uvicorn in a thread), or as a `headstart serve` process."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from tests.conftest import digit_images


@pytest.fixture(scope="session")
def image_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import headstart as hs
    from headstart.data import from_arrays

    images, labels = digit_images(6)
    out = tmp_path_factory.mktemp("serve") / "digits"
    hs.fit(from_arrays(images, labels), backbone="headstart:tiny-cnn", out=out, strategy="probe", progress=False,
           baseline=False)  # fmt: skip
    return out


def wait_ready(get: Any, timeout: float = 120.0) -> None:
    """Poll /v2/health/ready until 200 (`get` is a client's get method)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if get("/v2/health/ready").status_code == 200:
                return
        time.sleep(0.05)
    raise AssertionError(f"not ready after {timeout} s")


@contextlib.contextmanager
def client_for(model: Any, **config: Any) -> Iterator[Any]:
    """A FastAPI TestClient (lifespan run) for `model`, ready."""
    from fastapi.testclient import TestClient

    from headstart.serve import ServeConfig, create_app

    with TestClient(create_app(model, ServeConfig(**config))) as client:
        wait_ready(client.get)
        yield client


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(model: Any, *, ready: bool = True, **config: Any) -> Iterator[str]:
    """uvicorn on a free loopback port in a thread; yields its base URL, stops it after."""
    import uvicorn

    from headstart.serve import ServeConfig, create_app

    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(model, ServeConfig(**config)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)
        if ready:
            with httpx.Client(base_url=url) as c:
                wait_ready(c.get)
        yield url
    finally:
        server.should_exit = True
        thread.join(30)


class FakePredictor:
    """A Predictor whose answers are known: class 'b' gets probability len(text)/100 (texts), the mean pixel /255
    (images) or the peak amplitude (audio); it records every batch it was given (the warm-up first), and can be
    slowed (`delay`) or held (`gate`, after the warm-up)."""

    def __init__(self, modality: str = "text", delay: float = 0.0, gate: threading.Event | None = None) -> None:
        self.modality = modality
        self.tasks = ["label"]
        self.batches: list[list[Any]] = []
        self.calls = 0  # counted on entry, before the gate
        self.delay, self.gate = delay, gate

    def classes(self, task: str) -> list[str]:
        return ["a", "b"]

    def score(self, item: Any) -> float:
        if isinstance(item, str):
            return min(len(item), 100) / 100
        if isinstance(item, Path):
            import soundfile as sf

            return float(np.abs(sf.read(str(item), dtype="float32")[0]).max())
        arr = np.asarray(item, dtype=np.float32)
        return float(arr.mean() / 255) if self.modality == "image" else float(np.abs(arr).max())

    def probabilities(self, items: list[Any]) -> dict[str, np.ndarray]:
        self.calls += 1
        if self.gate is not None and self.batches:  # the warm-up passes; later batches wait for the gate
            self.gate.wait(30)
        time.sleep(self.delay)
        self.batches.append(list(items))
        b = np.array([self.score(i) for i in items], np.float32)
        return {"label": np.stack([1 - b, b], axis=1)}

    def card(self) -> dict[str, Any]:
        return {"format": "fake", "modality": self.modality, "tasks": {"label": {"classes": ["a", "b"]}}}
