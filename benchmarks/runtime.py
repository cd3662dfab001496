"""ONNX Runtime (fp32 and int8) against PyTorch eager, same inputs, same run, for the three default backbones.

    python benchmarks/runtime.py [--quick] [--out PATH]

For headstart:efficientnet-lite0 (digits), st:all-MiniLM-L6-v2 (BBC News) and headstart:speech-embedding (spoken
digits), each: a linear probe fitted on 16 labels per class; `headstart.export.export_onnx` in fp32 (parity gate on
the held-out split) and in int8 (static QDQ for the CNNs, dynamic for MiniLM; `force=True` so the figures are
recorded even where the 1-point gate would refuse); then, on the same prepared inputs (after decoding / resizing /
tokenising: the graph's inputs), latency of PyTorch eager (the backbone as headstart runs it, channels_last for
images, plus the heads) and of ONNX Runtime fp32 and int8 at batch 1 and 32: p50 / p95 per call, throughput
(items/s from the median) and the ratio to eager (eager timed with torch's 2 threads and with 1, interleaved; the
ratio is against the faster of the two: on a loaded 2-core machine OpenMP's threads can wait on each other).
Accuracy of fp32 and int8 on the held-out split, parity figures.

Writes benchmarks/results/runtime.json (or --out) and prints a markdown table. Both runtimes use every core (2 here);
the machine's load average is recorded at the start and the end: on a shared machine the ratios are what to read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HEADSTART_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent
MODELS = {
    "headstart:efficientnet-lite0": {"data": "samples:digits", "quantize": "static"},
    "st:all-MiniLM-L6-v2": {"data": "samples:bbc-news", "quantize": "dynamic"},
    "headstart:speech-embedding": {"data": "samples:spoken-digits", "quantize": "static"},
}
FULL = {"per_class": 16, "test": 400, "runs_1": 30, "runs_32": 8}
QUICK = {"per_class": 16, "test": 150, "runs_1": 12, "runs_32": 3}
BATCHES = (1, 32)


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def split(ds, per_class: int, n_test: int, seed: int = 0):
    """16 labelled items per class to fit on; a held-out sample of the rest (other voices for spoken digits)."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(ds.labels)
    groups = np.asarray(ds.groups) if ds.groups is not None else None
    pool = np.arange(len(labels))
    if groups is not None:  # speakers in the training half never speak in the test half
        names = sorted(set(groups))
        rng.shuffle(names)
        train_groups = set(names[: len(names) // 2])
        pool = np.array([i for i in pool if groups[i] in train_groups])
    train = []
    for c in sorted(set(labels)):
        idx = pool[labels[pool] == c]
        train += list(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    rest = np.array([i for i in range(len(labels)) if i not in set(train)])
    if groups is not None:
        rest = np.array([i for i in rest if groups[i] not in train_groups])
    test = rng.choice(rest, size=min(n_test, len(rest)), replace=False)
    return ds.subset(sorted(train)), ds.subset(sorted(test))


def timings(fn, feed, runs: int) -> list[float]:
    fn(feed)  # warm-up
    fn(feed)
    out = []
    for _ in range(runs):
        t = time.perf_counter()
        fn(feed)
        out.append(time.perf_counter() - t)
    return out


def quiet_session(path: Path):
    """An ONNX Runtime session whose threads do not spin-wait between calls: on 2 cores, spinning threads left behind
    by one call would slow the next eager PyTorch call of the interleaved timing."""
    import onnxruntime as ort

    from headstart.runtime import session_options

    options = session_options()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def stats(seconds: list[float], batch: int) -> dict[str, float]:
    p50, p95 = float(np.percentile(seconds, 50)), float(np.percentile(seconds, 95))
    return {"p50_ms": 1000 * p50, "p95_ms": 1000 * p95, "items_per_s": batch / p50, "runs": len(seconds)}


def bench_model(spec: str, cfg: dict, sizes: dict, work: Path) -> dict:
    import headstart as hs
    from headstart.data import load_data
    from headstart.export import export_onnx
    from headstart.export.graph import collate
    from headstart.model import load_model

    log(f"{spec}: data {cfg['data']}")
    ds = load_data(cfg["data"])
    train, test = split(ds, sizes["per_class"], sizes["test"])
    model_dir = work / spec.replace(":", "_").replace("/", "_")
    started = time.perf_counter()
    hs.fit(train, backbone=spec, out=model_dir, strategy="probe", test_size=0, baseline=False, progress=False)
    fit_s = time.perf_counter() - started
    log(f"{spec}: probe fitted on {len(train)} items in {fit_s:.0f} s; exporting fp32")
    fp32 = export_onnx(model_dir, work / "fp32", check=test)
    log(f"{spec}: exporting int8 ({cfg['quantize']})")
    int8 = export_onnx(model_dir, work / "int8", check=test, quantize=cfg["quantize"], force=True)
    q = int8["quantization"]

    model = load_model(model_dir)  # a fresh one: eager PyTorch as headstart runs it (channels_last for images)
    backbone, heads = model.backbone, [h.module_ for h in model.heads.values()]
    items = test.items[:32]
    prepared = [backbone.prepare(i) for i in items]

    def eager(feed):
        with torch.inference_mode():
            batch = {"input_ids": feed["input_ids"], "attention_mask": feed["attention_mask"]} if "input_ids" in feed \
                else next(iter(feed.values()))  # fmt: skip
            f = backbone.embed(batch)
            return [torch.softmax(h(f), dim=1) for h in heads]

    sessions = {
        name: quiet_session(work / kind / "model.onnx") for name, kind in (("onnx_fp32", "fp32"), ("onnx_int8", "int8"))
    }
    result: dict = {"batch": {}}
    for size in BATCHES:
        runs = sizes["runs_1"] if size == 1 else sizes["runs_32"]
        feeds = [
            collate(backbone, model.modality, prepared[s : s + size])
            for s in range(0, min(len(prepared), 8 * size), size)
        ]  # noqa: E501
        feeds = [f for f in feeds if next(iter(f.values())).shape[0] == size][: max(1, 8 // size)]
        row: dict = {}
        # interleaved: eager, fp32, int8 on each feed in turn, so load changes hit all three alike
        secs = {"pytorch_eager": [], "pytorch_eager_1_thread": [], "onnx_fp32": [], "onnx_int8": []}
        threads = torch.get_num_threads()
        for feed in feeds:
            np_feed = {k: v.numpy() for k, v in feed.items()}
            per_feed = max(1, runs // len(feeds))
            secs["pytorch_eager"] += timings(eager, feed, per_feed)
            torch.set_num_threads(1)  # on a loaded machine, OpenMP's 2 threads can wait on each other
            try:
                secs["pytorch_eager_1_thread"] += timings(eager, feed, per_feed)
            finally:
                torch.set_num_threads(threads)
            for name, sess in sessions.items():
                secs[name] += timings(lambda f, s=sess: s.run(None, f), np_feed, per_feed)
        for name, s in secs.items():
            row[name] = stats(s, size)
        best = min(row["pytorch_eager"]["p50_ms"], row["pytorch_eager_1_thread"]["p50_ms"])
        for name in ("onnx_fp32", "onnx_int8"):
            row[name]["speedup_vs_eager"] = best / row[name]["p50_ms"]  # against the faster eager setting
        result["batch"][str(size)] = row
        log(f"{spec}: batch {size}: " + ", ".join(f"{k} {v['p50_ms']:.1f} ms" for k, v in row.items()))
    shape = {k: list(v.shape) for k, v in collate(backbone, model.modality, prepared[:32]).items()}
    result.update(
        spec=spec,
        data=cfg["data"],
        n_train=len(train),
        n_test=len(test),
        input_shape_batch_32=shape,
        exporter=fp32["exporter"],
        parity_fp32=fp32["parity"],
        preprocessing_parity=fp32["preprocessing_parity"],
        accuracy_fp32=q.get("accuracy_fp32"),
        accuracy_int8=q.get("accuracy_int8"),
        accuracy_change_points=None if q.get("accuracy_change") is None else 100 * q["accuracy_change"],
        int8_gate_passes=q.get("accuracy_change") is not None and q["accuracy_change"] >= -0.01,
        int8=q,
    )
    return result


def table(results: list[dict]) -> str:
    lines = [
        "| model | batch | eager p50 / p95 ms | ORT fp32 p50 / p95 ms (x eager) | ORT int8 p50 / p95 ms (x eager) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        for size, row in r["batch"].items():
            e, f, q = row["pytorch_eager"], row["onnx_fp32"], row["onnx_int8"]
            if row["pytorch_eager_1_thread"]["p50_ms"] < e["p50_ms"]:
                e = row["pytorch_eager_1_thread"]
            lines.append(
                f"| {r['spec']} | {size} | {e['p50_ms']:.1f} / {e['p95_ms']:.1f} | {f['p50_ms']:.1f} / "
                f"{f['p95_ms']:.1f} ({f['speedup_vs_eager']:.2f}x) | {q['p50_ms']:.1f} / {q['p95_ms']:.1f} "
                f"({q['speedup_vs_eager']:.2f}x) |"
            )
    lines += [
        "",
        "| model | fp32 features max diff | fp32 probs max diff | top-1 | int8 mode | size ratio | "
        "accuracy fp32 -> int8 (points) | int8 top-1 vs fp32 |",
        "|---|---:|---:|---:|---|---:|---:|---:|",
    ]
    for r in results:
        p, q = r["parity_fp32"], r["int8"]
        acc = "-" if r["accuracy_fp32"] is None else \
            f"{r['accuracy_fp32']:.4f} -> {r['accuracy_int8']:.4f} ({r['accuracy_change_points']:+.1f})"  # fmt: skip
        lines.append(
            f"| {r['spec']} | {p['features_max_abs_diff']:.2g} | {p['probabilities_max_abs_diff']:.2g} | "
            f"{100 * p['top1_agreement']:.0f}% | {q['mode']} | {q['size_ratio']:.2f} | {acc} | "
            f"{100 * q['top1_agreement_vs_fp32']:.1f}% |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer test items and timing runs (a loaded machine)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated backbone specs")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "runtime.json")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    out = {
        "command": "python benchmarks/runtime.py" + (" --quick" if args.quick else ""),
        "sizes": sizes,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch_threads": torch.get_num_threads()},
        "loadavg_start": loadavg(),
        "versions": {"torch": torch.__version__, "onnxruntime": __import__("onnxruntime").__version__},
        "models": [],
    }
    cache = tempfile.mkdtemp(prefix="hs-runtime-cache-")
    os.environ.setdefault("HEADSTART_CACHE", cache)
    for spec in args.models.split(","):
        with tempfile.TemporaryDirectory(prefix="hs-runtime-") as work:
            out["models"].append(bench_model(spec, MODELS[spec], sizes, Path(work)))
        out["loadavg_end"] = loadavg()
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2, default=str))
    print(table(out["models"]))
    print(f"\nload average: start {out['loadavg_start']}, end {out['loadavg_end']}; wrote {args.out}")


if __name__ == "__main__":
    main()
