"""Prometheus text exposition (format 0.0.4), written out by hand: requests by path and code, a latency histogram,
a batch-size histogram, the queue depth and readiness. Paths are route templates, so their number stays small."""

from __future__ import annotations

import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

ROUTES = [
    (re.compile(r"^/v2/models/[^/]+/ready$"), "/v2/models/{name}/ready"),
    (re.compile(r"^/v2/models/[^/]+/infer$"), "/v2/models/{name}/infer"),
    (re.compile(r"^/v2/models/[^/]+$"), "/v2/models/{name}"),
]
PLAIN = {"/", "/predict", "/card", "/metrics", "/docs", "/openapi.json", "/v2", "/v2/health/live", "/v2/health/ready"}


def route_of(path: str) -> str:
    """The route template a request path belongs to; "other" for anything the server does not serve."""
    if path in PLAIN:
        return path
    return next((name for pattern, name in ROUTES if pattern.match(path)), "other")


class Histogram:
    def __init__(self, buckets: Sequence[float]) -> None:
        self.buckets = tuple(buckets)
        self.counts = [0] * len(self.buckets)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.buckets):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        sep = "," if labels else ""
        out = [f'{name}_bucket{{{labels}{sep}le="{_num(b)}"}} {c}' for b, c in zip(self.buckets, self.counts)]
        out.append(f'{name}_bucket{{{labels}{sep}le="+Inf"}} {self.n}')
        braces = f"{{{labels}}}" if labels else ""
        return [*out, f"{name}_sum{braces} {_num(self.total)}", f"{name}_count{braces} {self.n}"]


class Metrics:
    """What `/metrics` shows. Updated from the event loop and the prediction thread alike, under one lock."""

    def __init__(self, queue_depth: Callable[[], int] = lambda: 0, ready: Callable[[], bool] = lambda: False):
        self.queue_depth = queue_depth
        self.ready = ready
        self._lock = threading.Lock()
        self.requests: Counter[tuple[str, int]] = Counter()
        self.latency: dict[str, Histogram] = {}
        self.batch = Histogram(BATCH_BUCKETS)

    def request(self, path: str, code: int, seconds: float) -> None:
        route = route_of(path)
        with self._lock:
            self.requests[(route, code)] += 1
            self.latency.setdefault(route, Histogram(LATENCY_BUCKETS)).observe(seconds)

    def batch_size(self, n: int) -> None:
        with self._lock:
            self.batch.observe(n)

    def render(self) -> str:
        with self._lock:
            lines = [
                "# HELP headstart_requests_total HTTP requests answered, by route and status code.",
                "# TYPE headstart_requests_total counter",
            ]
            for (route, code), n in sorted(self.requests.items()):
                lines.append(f'headstart_requests_total{{path="{route}",code="{code}"}} {n}')
            lines += [
                "# HELP headstart_request_duration_seconds Time from request to response, by route.",
                "# TYPE headstart_request_duration_seconds histogram",
            ]
            for route, hist in sorted(self.latency.items()):
                lines += hist.lines("headstart_request_duration_seconds", f'path="{route}"')
            lines += [
                "# HELP headstart_batch_size Items per model call formed by micro-batching.",
                "# TYPE headstart_batch_size histogram",
                *self.batch.lines("headstart_batch_size"),
            ]
        lines += [
            "# HELP headstart_queue_depth Items waiting for a batch.",
            "# TYPE headstart_queue_depth gauge",
            f"headstart_queue_depth {self.queue_depth()}",
            "# HELP headstart_model_ready 1 once the model is loaded and its warm-up prediction passed.",
            "# TYPE headstart_model_ready gauge",
            f"headstart_model_ready {int(self.ready())}",
        ]
        return "\n".join(lines) + "\n"


def _num(value: float) -> str:
    return repr(float(value))


def parse(text: str) -> dict[str, float]:
    """Sample lines of an exposition as {'name{labels}': value}: for tests and the load test."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out
