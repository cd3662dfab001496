"""`headstart serve` as a user runs it: the installed entry point, a free loopback port, readiness polled, then
SIGTERM while requests are in flight: every one of them is answered 200 and the process exits cleanly."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from headstart.serve.metrics import parse
from tests.core.test_cli import run
from tests.serve.conftest import free_port, wait_ready


def test_serve_help_lists_the_limits():
    code, output = run("serve", "--help")
    assert code == 0
    for option in (
        "--port",
        "--host",
        "--max-batch-size",
        "--max-wait-ms",
        "--max-queue",
        "--max-body-mb",
        "--timeout",
    ):
        assert option in output


def test_serve_refuses_a_folder_that_is_no_model(tmp_path):
    code, output = run("serve", tmp_path)
    assert code == 2 and "not a model folder" in output


def headstart_command() -> list[str]:
    exe = shutil.which("headstart", path=os.path.dirname(sys.executable))
    return [exe] if exe else [sys.executable, "-m", "headstart.cli"]


def test_sigterm_answers_every_request_in_flight(text_model_dir):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [*headstart_command(), "serve", str(text_model_dir), "--port", str(port), "--max-wait-ms", "3000"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            wait_ready(client.get)
            assert client.get(f"/v2/models/{text_model_dir.name}").status_code == 200
            with ThreadPoolExecutor(6) as pool:
                futures = [
                    pool.submit(httpx.post, f"{url}/predict", json={"texts": [f"text {i}"]}, timeout=60)
                    for i in range(6)
                ]
                deadline = time.monotonic() + 20  # all six queued, waiting for their batch: now stop the server
                while parse(client.get("/metrics").text)["headstart_queue_depth"] < 6 and time.monotonic() < deadline:
                    time.sleep(0.02)
                proc.send_signal(signal.SIGTERM)
                answers = [f.result() for f in futures]
        assert [r.status_code for r in answers] == [200] * 6, [r.text for r in answers]
        assert all(r.json()["predictions"][0]["label"] in ("business", "sport") for r in answers)
        assert proc.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down cleanly
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.stdout.read() if proc.stdout else ""
    assert "Application shutdown complete" in output and "Traceback" not in output, output
