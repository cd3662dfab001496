"""The readiness gate, micro-batching under concurrent requests, the queue limit (429), the time limit (504) and
the metrics that count them, on a live uvicorn server in a thread."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from headstart.serve.metrics import parse
from tests.serve.conftest import FakePredictor, client_for, live_server


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def predict(url: str, text: str, timeout: float = 30) -> httpx.Response:
    return httpx.post(f"{url}/predict", json={"texts": [text]}, timeout=timeout)


def test_not_ready_until_loaded_and_warmed_up():
    release = threading.Event()
    fake = FakePredictor("text")

    def slow_loader():
        release.wait(30)
        return fake

    from fastapi.testclient import TestClient

    from headstart.serve import ServeConfig, create_app

    with TestClient(create_app(slow_loader, ServeConfig(name="m"))) as client:
        assert client.get("/v2/health/live").status_code == 200
        r = client.get("/v2/health/ready")
        assert r.status_code == 503 and "loading" in r.json()["error"]
        assert client.get("/v2/models/m/ready").status_code == 503
        assert client.post("/predict", json={"texts": ["x"]}).status_code == 503
        assert "headstart_model_ready 0" in client.get("/metrics").text
        release.set()
        deadline = time.monotonic() + 10
        while client.get("/v2/health/ready").status_code != 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert client.get("/v2/health/ready").status_code == 200
        assert fake.batches == [["warm-up"]]  # ready only after a warm-up prediction
        assert client.post("/predict", json={"texts": ["x"]}).status_code == 200
        assert "headstart_model_ready 1" in client.get("/metrics").text


def test_a_model_that_fails_to_load_is_never_ready():
    def broken():
        raise RuntimeError("weights are gone")

    from fastapi.testclient import TestClient

    from headstart.serve import ServeConfig, create_app

    with TestClient(create_app(broken, ServeConfig(name="m"))) as client:
        deadline = time.monotonic() + 10
        while "failed" not in client.get("/v2/health/ready").text and time.monotonic() < deadline:
            time.sleep(0.02)
        r = client.get("/v2/health/ready")
        assert r.status_code == 503 and "weights are gone" in r.json()["error"]
        assert client.get("/v2/health/live").status_code == 200


def test_metrics_count_requests_latency_batches_and_queue():
    with client_for(FakePredictor("text"), name="m") as client:
        before = parse(client.get("/metrics").text)
        for _ in range(3):
            assert client.post("/predict", json={"texts": ["a", "bb"]}).status_code == 200
        assert client.post("/predict", json={"texts": [""]}).status_code == 422
        text = client.get("/metrics").text
    after = parse(text)
    ok, bad = (
        'headstart_requests_total{path="/predict",code="200"}',
        'headstart_requests_total{path="/predict",code="422"}',
    )
    assert before.get(ok, 0) == 0 and after[ok] == 3 and after[bad] == 1
    assert after['headstart_request_duration_seconds_count{path="/predict"}'] == 4
    assert after['headstart_request_duration_seconds_bucket{path="/predict",le="+Inf"}'] == 4
    assert after["headstart_batch_size_count"] == 3 and after["headstart_batch_size_sum"] == 6
    assert after['headstart_batch_size_bucket{le="2.0"}'] == 3
    assert after["headstart_queue_depth"] == 0
    assert "# TYPE headstart_request_duration_seconds histogram" in text


def test_concurrent_requests_form_batches_larger_than_one():
    fake = FakePredictor("text", delay=0.05)
    with live_server(fake, name="m", max_wait_ms=100, max_batch_size=8) as url:
        texts = [f"text number {i}" + "x" * i for i in range(16)]
        with ThreadPoolExecutor(16) as pool:
            answers = list(pool.map(lambda t: predict(url, t), texts))
        metrics = parse(httpx.get(f"{url}/metrics").text)
    assert all(r.status_code == 200 for r in answers)
    for text, r in zip(texts, answers):  # each request got its own row back
        assert r.json()["predictions"][0]["label_top"][0]["probability"] == pytest.approx(
            max(len(text) / 100, 1 - len(text) / 100), abs=1e-6
        )
    sizes = [len(b) for b in fake.batches[1:]]
    assert sum(sizes) == 16 and max(sizes) > 1 and max(sizes) <= 8
    assert metrics["headstart_batch_size_count"] == len(sizes) and metrics["headstart_batch_size_sum"] == 16


def test_a_full_queue_is_429_with_retry_after():
    gate = threading.Event()
    fake = FakePredictor("text", gate=gate)
    with live_server(fake, name="m", max_queue=2, max_wait_ms=0, max_batch_size=1) as url:
        with ThreadPoolExecutor(4) as pool:
            first = pool.submit(predict, url, "one")  # taken by the worker, held at the gate
            wait_for(lambda: fake.calls == 2)  # the warm-up, then "one"
            queued = [pool.submit(predict, url, t) for t in ("two", "three")]  # fill the queue (2 items)
            wait_for(lambda: parse(httpx.get(f"{url}/metrics").text)["headstart_queue_depth"] == 2)
            r = predict(url, "four")
            assert r.status_code == 429 and r.headers["retry-after"] == "1" and "queue" in r.json()["error"]
            gate.set()
            assert first.result().status_code == 200 and all(q.result().status_code == 200 for q in queued)
        assert predict(url, "five").status_code == 200


def test_a_slow_answer_is_504_and_the_server_goes_on():
    fake = FakePredictor("text", delay=0.6)
    with live_server(fake, name="m", timeout_s=0.2) as url:
        r = predict(url, "slow")
        assert r.status_code == 504 and "0.2 s" in r.json()["error"]
        fake.delay = 0.0
        time.sleep(0.7)
        assert predict(url, "quick").status_code == 200
