"""A bounded load test of `headstart serve` on loopback: throughput, latency, the batches micro-batching formed,
then the same load with a share of malformed and oversized requests, and the server's memory before and after.

    python benchmarks/serve_load.py [--model DIR] [--clients 16] [--requests 200] [--bad-share 0.2] [--quick]
                                    [--out PATH]

Without `--model`, fits the README's probe first: st:all-MiniLM-L6-v2 on samples:bbc-news with 16 labels per class.
The server runs as its own process (`headstart serve`, defaults except `--max-body-mb 1`, so that oversized bodies
stay cheap to send). Each request carries one text: the first 300 characters of a BBC News article, from 200
distinct ones, alternating between `POST /predict` and `POST /v2/models/NAME/infer`. Every valid answer is checked
against the model's own prediction of the same text in this process (label equal, probability within 1e-3).

Phase 1: `--clients` threads, each sending `--requests` requests back to back on one keep-alive connection; it stops
by itself. Reported: requests/s, p50/p99 latency, errors (any non-200), and the batch-size histogram from /metrics.
Phase 2: the same, with `--bad-share` of the requests malformed (empty text, a wrong field, broken JSON, a wrong
tensor shape, too many items) or oversized (a 1.1 MiB body): each must be a 4xx with a JSON error, none a 5xx,
and the valid ones still correct. Phase 3: phase 1 again, to tell memory that keeps growing from memory that settles.
Server RSS (psutil, else /proc) after each phase, and the CPU seconds the server and this load generator used: they
share the machine's cores, so a client busy with fast-failing requests slows the model it is measuring.
Writes benchmarks/results/serve_load.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HEADSTART_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import httpx  # noqa: E402
import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from headstart.serve.metrics import parse  # noqa: E402

TEXT_CHARS = 300
BAD_KINDS = ("empty text", "wrong field", "broken JSON", "wrong shape", "too many items", "oversized body")
DISTINCT = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2**20
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no RSS")


def cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds of process `pid` (this one when None)."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    try:
        import psutil

        t = psutil.Process(pid).cpu_times()
        return t.user + t.system
    except ImportError:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def fit_probe(folder: Path) -> Path:
    from headstart import api

    out = folder / "bbc"
    api.fit("samples:bbc-news", backbone="st:all-MiniLM-L6-v2", strategy="probe", labels_per_class=16, out=out,
            progress=False)  # fmt: skip
    return out


def texts_and_expected(model_dir: Path) -> tuple[list[str], list[str], np.ndarray]:
    from headstart.data import load_data
    from headstart.model import load_model

    ds = load_data("samples:bbc-news")
    step = max(1, len(ds.items) // DISTINCT)
    texts = [" ".join(str(t).split())[:TEXT_CHARS] for t in ds.items[::step][:DISTINCT]]
    model = load_model(model_dir)
    proba = model.predict_proba(texts)
    return texts, model.classes, proba


class Load:
    """`clients` threads x `requests` requests; a share of them bad by design. Collects every outcome."""

    def __init__(self, url: str, name: str, texts: list[str], classes: list[str], proba: np.ndarray) -> None:
        self.url, self.name, self.texts, self.classes, self.proba = url, name, texts, classes, proba
        self.lock = threading.Lock()
        self.records: list[dict[str, Any]] = []
        self.bad_kinds = list(BAD_KINDS)

    def bad_request(self, kind: str) -> tuple[str, dict[str, Any]]:
        infer = f"/v2/models/{self.name}/infer"
        json_type = {"Content-Type": "application/json"}
        return {
            "empty text": ("/predict", {"json": {"texts": ["  "]}}),
            "wrong field": ("/predict", {"json": {"text": ["a"]}}),
            "broken JSON": ("/predict", {"content": b'{"texts": ["a"', "headers": json_type}),
            "wrong shape": (
                infer,
                {"json": {"inputs": [{"name": "text", "shape": [2], "datatype": "BYTES", "data": ["a"]}]}},
            ),  # fmt: skip
            "too many items": ("/predict", {"json": {"texts": ["a"] * 65}}),
            "oversized body": ("/predict", {"json": {"texts": ["x" * int(1.1 * 2**20)]}}),
        }[kind]

    def client(self, index: int, n: int, bad_share: float) -> None:
        rng = np.random.default_rng(index)
        kinds = self.bad_kinds
        with httpx.Client(base_url=self.url, timeout=120) as c:
            for j in range(n):
                k = (index * n + j) % len(self.texts)
                bad = rng.random() < bad_share
                if bad:
                    kind = kinds[int(rng.integers(len(kinds)))]
                    path, kwargs = self.bad_request(kind)
                elif j % 2:
                    kind, path = "infer", f"/v2/models/{self.name}/infer"
                    tensor = {"name": "text", "shape": [1], "datatype": "BYTES", "data": [self.texts[k]]}
                    kwargs = {"json": {"inputs": [tensor]}}
                else:
                    kind, path, kwargs = "predict", "/predict", {"json": {"texts": [self.texts[k]]}}
                start = time.perf_counter()
                try:
                    r = c.post(path, **kwargs)
                    status, body = r.status_code, r.content
                except httpx.HTTPError as exc:
                    status, body = 0, repr(exc).encode()
                seconds = time.perf_counter() - start
                record = {"kind": kind, "bad": bad, "status": status, "seconds": seconds, "ok": None}
                if bad:
                    try:
                        record["ok"] = 400 <= status < 500 and bool(json.loads(body)["error"])
                    except (ValueError, KeyError, TypeError):
                        record["ok"] = False
                else:
                    record["ok"] = status == 200 and self.correct(kind, json.loads(body), k)
                with self.lock:
                    self.records.append(record)

    def correct(self, kind: str, body: dict[str, Any], k: int) -> bool:
        want = self.proba[k]
        if kind == "predict":
            row = body["predictions"][0]
            label, p = row["label"], row["label_probability"]
        else:
            out = {o["name"]: o for o in body["outputs"]}
            label, p = out["label"]["data"][0], max(out["label_probabilities"]["data"])
        return label == self.classes[int(want.argmax())] and abs(p - float(want.max())) < 1e-3

    def run(self, clients: int, requests: int, bad_share: float) -> dict[str, Any]:
        before = parse(httpx.get(f"{self.url}/metrics").text)
        threads = [threading.Thread(target=self.client, args=(i, requests, bad_share)) for i in range(clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
        after = parse(httpx.get(f"{self.url}/metrics").text)
        return summarise(self.records, wall, batch_histogram(before, after))


def batch_histogram(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """The batch sizes formed between two /metrics readings: per bucket (`<= le`), their count and mean."""

    def delta(key: str) -> float:
        return after.get(key, 0) - before.get(key, 0)

    buckets = {k.split('le="')[1].rstrip('"}'): delta(k) for k in after if k.startswith("headstart_batch_size_bucket")}
    count, total = delta("headstart_batch_size_count"), delta("headstart_batch_size_sum")
    cumulative = {le: int(v) for le, v in buckets.items()}
    return {"batches": int(count), "items": int(total), "mean": total / count if count else None,
            "cumulative_le": cumulative}  # fmt: skip


def summarise(records: list[dict[str, Any]], wall: float, batches: dict[str, Any]) -> dict[str, Any]:
    good = [r for r in records if not r["bad"]]
    bad = [r for r in records if r["bad"]]
    lat = sorted(r["seconds"] for r in good)
    statuses: dict[str, int] = {}
    for r in records:
        statuses[str(r["status"])] = statuses.get(str(r["status"]), 0) + 1
    bad_kinds: dict[str, dict[str, Any]] = {}
    for r in bad:
        row = bad_kinds.setdefault(r["kind"], {"statuses": {}, "seconds": []})
        row["statuses"][str(r["status"])] = row["statuses"].get(str(r["status"]), 0) + 1
        row["seconds"].append(r["seconds"])
    for row in bad_kinds.values():
        row["p50_ms"] = round(1000 * statistics.median(row.pop("seconds")), 1)
    return {
        "requests": len(records),
        "seconds": round(wall, 2),
        "requests_per_s": round(len(records) / wall, 1),
        "valid": len(good),
        "valid_per_s": round(len(good) / wall, 1),
        "p50_ms": round(1000 * lat[len(lat) // 2], 1) if lat else None,
        "p99_ms": round(1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))], 1) if lat else None,
        "mean_ms": round(1000 * statistics.fmean(lat), 1) if lat else None,
        "valid_errors": sum(not r["ok"] for r in good),
        "malformed": len(bad),
        "malformed_not_4xx_json": sum(not r["ok"] for r in bad),
        "status_5xx": sum(500 <= r["status"] < 600 for r in records),
        "transport_errors": sum(r["status"] == 0 for r in records),
        "statuses": statuses,
        "malformed_by_kind": bad_kinds,
        "batch_sizes": batches,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="a model folder (default: fit the README's BBC probe)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=200, help="requests per client")
    parser.add_argument("--bad-share", type=float, default=0.2)
    parser.add_argument("--bad-kinds", default=",".join(BAD_KINDS), help="which malformed requests to send")
    parser.add_argument("--quick", action="store_true", help="4 clients x 25 requests: a smoke run")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "serve_load.json")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.requests = 4, 25

    work = Path(tempfile.mkdtemp(prefix="headstart-serve-load-"))
    os.environ.setdefault("HEADSTART_CACHE", str(work / "cache"))
    t0 = time.perf_counter()
    model_dir = args.model or fit_probe(work)
    fit_s = time.perf_counter() - t0
    texts, classes, proba = texts_and_expected(model_dir)
    name, port = "bbc", free_port()
    url = f"http://127.0.0.1:{port}"
    exe = Path(sys.executable).with_name("headstart")
    command = [str(exe) if exe.exists() else sys.executable, *([] if exe.exists() else ["-m", "headstart.cli"])]
    command += ["serve", str(model_dir), "--port", str(port), "--name", name, "--max-body-mb", "1"]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    result: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        while True:
            try:
                if httpx.get(f"{url}/v2/health/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.perf_counter() - started > 300:
                raise SystemExit(f"the server did not become ready: {server.stderr.read() if server.stderr else ''}")
            time.sleep(0.1)
        ready_s = time.perf_counter() - started
        rss = {"ready": rss_mb(server.pid)}
        phases: dict[str, dict[str, Any]] = {}
        for phase, share in (("clean", 0.0), ("with_malformed", args.bad_share), ("clean_again", 0.0)):
            load = Load(url, name, texts, classes, proba)
            load.bad_kinds = args.bad_kinds.split(",")
            server_cpu, own_cpu = cpu_s(server.pid), cpu_s()
            phases[phase] = load.run(args.clients, args.requests, share)
            phases[phase]["cpu_s"] = {"server": round(cpu_s(server.pid) - server_cpu, 1),
                                      "load_generator": round(cpu_s() - own_cpu, 1)}  # fmt: skip
            rss[f"after_{phase}"] = rss_mb(server.pid)
        server.send_signal(signal.SIGTERM)
        exit_code = server.wait(60)
        result = {
            "command": " ".join(["python benchmarks/serve_load.py", *sys.argv[1:]]),
            "model": str(args.model or "st:all-MiniLM-L6-v2 probe on samples:bbc-news, 16 labels per class"),
            "server": "headstart serve (defaults: --max-batch-size 32 --max-wait-ms 5 --max-queue 256) --max-body-mb 1",
            "clients": args.clients,
            "requests_per_client": args.requests,
            "text_chars": TEXT_CHARS,
            "fit_s": round(fit_s, 1),
            "ready_s": round(ready_s, 1),
            "malformed_share": args.bad_share,
            "malformed_kinds": args.bad_kinds.split(","),
            **phases,
            "server_rss_mb": {k: round(v, 1) for k, v in rss.items()},
            "server_exit_code_after_sigterm": exit_code,
            "machine": {"cpus": os.cpu_count(), "load_avg_after": os.getloadavg(), "python": platform.python_version()},
        }
    finally:
        if server.poll() is None:
            server.kill()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    for phase in ("clean", "with_malformed", "clean_again"):
        r = result[phase]
        print(
            f"{phase}: {r['requests']} requests in {r['seconds']} s = {r['requests_per_s']}/s; valid p50 "
            f"{r['p50_ms']} ms, p99 {r['p99_ms']} ms; valid errors {r['valid_errors']}; malformed {r['malformed']} "
            f"(not 4xx: {r['malformed_not_4xx_json']}); 5xx {r['status_5xx']}; batches: mean "
            f"{r['batch_sizes']['mean']:.1f}, {r['batch_sizes']['cumulative_le']}; CPU s {r['cpu_s']}"
        )
    print(f"server RSS MiB: {result['server_rss_mb']}; wrote {args.out}")


if __name__ == "__main__":
    main()
