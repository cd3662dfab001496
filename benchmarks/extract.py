"""Feature-extraction benchmarks for headstart, each figure a ratio against a reference measured in the same run.

    python benchmarks/extract.py [--quick] [--reps K] [--out PATH]

1. extraction throughput: `extract_features(..., cache=False)` / the raw `backbone.embed` forward on the same,
   pre-collated batches (same items, batch size and order), for st:all-MiniLM-L6-v2 on BBC News and
   headstart:efficientnet-lite0 on digits; sentence-transformers' own `encode` as a second text reference.
   Goal: >= 0.9 (the best of the interleaved repetitions; medians shown beside it). Also the share of each
   headstart run spent inside `backbone.embed`, a within-run estimate of the same ratio.
2. `api.fit` twice on the same data with a fresh HEADSTART_CACHE: first time / second time. Goal: >= 10x.
3. LinearHead vs `make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))` on the same cached
   features and split: accuracy difference (goal: within 0.5 points) and fit time, best of >= 3 (goal: ratio <= 1).
   Also: the mean accuracy difference over 5 seeded splits, near-constant feature dimensions, and both fit times
   with OpenBLAS held to one thread.
4. peak RSS of `headstart embed DIR --backbone headstart:tiny-cnn --no-cache` on 10N images / N images,
   each in its own subprocess, started from a tiny launcher that reports RUSAGE_CHILDREN (a child forked directly
   from this big process would carry this process's pages in its ru_maxrss). Goal: < 1.3.

The machine may be shared: timings are interleaved (headstart, reference, headstart, ...) and the best of
`--reps` repetitions is kept; the load average before and after each section is recorded in the JSON.
Writes benchmarks/results/extract.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# A fresh, private feature cache for this run; set before headstart is imported (it is read at call time anyway).
_CACHE_DIR = tempfile.mkdtemp(prefix="headstart-bench-cache-")
os.environ["HEADSTART_CACHE"] = _CACHE_DIR
os.environ.setdefault("HEADSTART_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from headstart import api  # noqa: E402
from headstart.backbones import create_backbone  # noqa: E402
from headstart.data import Dataset, load_data, split  # noqa: E402
from headstart.features import FeatureCache  # noqa: E402
from headstart.features.extract import (  # noqa: E402
    batch_order,
    default_workers,
    extract_features,
    extraction_device,
    iter_batches,
    to_device,
)
from headstart.heads import LinearHead  # noqa: E402

ROOT = Path(__file__).resolve().parent
TEXT_SPEC = "st:all-MiniLM-L6-v2"
IMAGE_SPEC = "headstart:efficientnet-lite0"
MEMORY_SPEC = "headstart:tiny-cnn"
BATCH = 32

FULL = {"text_n": 128, "image_n": 128, "text_reps": 3, "image_reps": 3, "fit_n": 400, "digits_n": 500, "mem_n": 300}
QUICK = {"text_n": 64, "image_n": 64, "text_reps": 1, "image_reps": 1, "fit_n": 120, "digits_n": 150, "mem_n": 100}


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def spread(ds: Dataset, n: int) -> Dataset:
    """n items evenly spread over `ds` (sample sets are stored class by class)."""
    idx = np.linspace(0, len(ds) - 1, num=min(n, len(ds))).round().astype(int)
    return ds.subset(np.unique(idx))


# ----------------------------------------------------------------------------------------------- 1. throughput


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def throughput(bb, items: list, reps: int, st_encode: bool) -> dict:
    """headstart extraction vs the raw forward on pre-collated batches in headstart's order, interleaved."""
    order = batch_order(bb, items)
    ordered = [items[i] for i in order]
    batches = list(iter_batches(bb, ordered, [f"#{i}" for i in order], batch_size=BATCH, num_workers=0))
    n = len(items)

    # warm-up (oneDNN primitives / CUDA kernels, allocator): a full-size batch through each path
    device = extraction_device()
    bb.module.to(device)
    with torch.inference_mode():
        bb.embed(to_device(batches[0], device))
    if st_encode:
        bb.module.encode(ordered[:BATCH], batch_size=BATCH, show_progress_bar=False, device=str(device))
    bb.module.to("cpu")

    hs_s, raw_s, st_s = [], [], []
    hs_x = raw_x = st_x = None
    # inside headstart's runs, time each backbone.embed call too: the share of the run spent in the forward pass
    # is a second estimate of the ratio, measured within one run and so far less sensitive to load drifting
    forward = bb.embed
    in_embed: list[float] = []

    def timed_embed(batch):
        t0 = time.perf_counter()
        out = forward(batch)
        in_embed.append(time.perf_counter() - t0)
        return out

    share = []
    for _ in range(reps):
        in_embed.clear()
        bb.embed = timed_embed
        t = time.perf_counter()
        try:
            hs_x = extract_features(bb, items, batch_size=BATCH, cache=False, progress=False)
        finally:
            del bb.embed
        hs_s.append(time.perf_counter() - t)
        share.append(sum(in_embed) / hs_s[-1])

        # the raw forward on the device headstart extracts on (a GPU when there is one), batches moved there
        bb.module.eval().to(device)
        _sync(device)
        t = time.perf_counter()
        with torch.inference_mode():
            outs = [bb.embed(to_device(b, device)) for b in batches]
            raw_x = torch.cat(outs).float().cpu().numpy()
        raw_s.append(time.perf_counter() - t)

        if st_encode:
            t = time.perf_counter()
            st_x = bb.module.encode(
                items, batch_size=BATCH, show_progress_bar=False, convert_to_numpy=True, device=str(device)
            )
            st_s.append(time.perf_counter() - t)
        bb.module.to("cpu")

    res = {
        "spec": bb.spec,
        "device": str(device),
        "n_items": n,
        "batch_size": BATCH,
        "reps": reps,
        "workers": default_workers(bb),
        "headstart_s": [round(s, 3) for s in hs_s],
        "raw_s": [round(s, 3) for s in raw_s],
        "headstart_items_per_s": n / min(hs_s),
        "raw_items_per_s": n / min(raw_s),
        "ratio": min(raw_s) / min(hs_s),
        "ratio_median": statistics.median(raw_s) / statistics.median(hs_s),
        "ratio_paired_median": statistics.median(r / h for r, h in zip(raw_s, hs_s)),
        "forward_share_of_headstart_run": [round(v, 4) for v in share],
        "forward_share_median": statistics.median(share),
        "max_abs_diff_vs_raw": float(np.abs(hs_x[order] - raw_x).max()),
    }
    if hasattr(batches[0], "keys"):
        res["padded_lengths"] = [int(b["input_ids"].shape[1]) for b in batches]
    if st_encode:
        res.update(
            {
                "st_encode_s": [round(s, 3) for s in st_s],
                "st_encode_items_per_s": n / min(st_s),
                "ratio_vs_st_encode": min(st_s) / min(hs_s),
                "ratio_vs_st_encode_median": statistics.median(st_s) / statistics.median(hs_s),
                "max_abs_diff_vs_st_encode": float(np.abs(hs_x - st_x).max()),
            }
        )
    return res


# ------------------------------------------------------------------------------------------- 2. first vs second fit


def fit_twice(ds: Dataset) -> dict:
    runs = []
    for _ in range(2):
        t = time.perf_counter()
        model = api.fit(ds, backbone=TEXT_SPEC, strategy="probe", baseline=False, progress=False)
        wall = time.perf_counter() - t
        runs.append(
            {
                "wall_s": wall,
                "timing_s": {k: round(v, 3) for k, v in model.report["timing_s"].items()},
                "accuracy": model.metrics["label"]["accuracy"],
            }
        )
    return {
        "data": f"samples:bbc-news, {len(ds)} articles spread over the corpus",
        "n_items": len(ds),
        "backbone": TEXT_SPEC,
        "first": runs[0],
        "second": runs[1],
        "speedup": runs[0]["wall_s"] / runs[1]["wall_s"],
        "same_accuracy": runs[0]["accuracy"] == runs[1]["accuracy"],
    }


# ----------------------------------------------------------------------------------------------- 3. heads


def _sklearn_pipeline():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def split_indices(ds: Dataset, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """headstart's own split (the one api.fit uses), as row indices into `ds`."""
    row = {w: i for i, w in enumerate(ds.where)}
    train, test = split(ds, test_size=0.25, seed=seed)
    return np.array([row[w] for w in train.where]), np.array([row[w] for w in test.where])


def head_vs_sklearn(name: str, ds: Dataset, x: np.ndarray, seeds: int = 5, min_reps: int = 3) -> dict:
    """Accuracy and fit time of LinearHead vs the scikit-learn pipeline on headstart's seed-0 split (the headline),
    plus the mean accuracy difference over `seeds` splits, and a look at near-constant feature dimensions."""
    y = np.asarray(ds.labels)
    tr, te = split_indices(ds, 0)
    x_tr, y_tr, x_te, y_te = x[tr], y[tr], x[te], y[te]

    # best of at least 3 interleaved timings each; cheap fits get more repetitions (up to 15, ~2 s per method)
    hs_t, sk_t = [], []
    head = pipe = None
    while len(hs_t) < min_reps or (len(hs_t) < 15 and sum(hs_t) + sum(sk_t) < 4.0):
        t = time.perf_counter()
        head = LinearHead().fit(x_tr, y_tr)
        hs_t.append(time.perf_counter() - t)
        t = time.perf_counter()
        pipe = _sklearn_pipeline().fit(x_tr, y_tr)
        sk_t.append(time.perf_counter() - t)
    acc_hs, acc_sk = float(head.score(x_te, y_te)), float(pipe.score(x_te, y_te))

    # the same fits with OpenBLAS held to one thread (threadpoolctl): on a small, busy machine two BLAS threads per
    # GEMM can cost far more than they give; this is what a `threadpool_limits(1, "blas")` in LinearHead would buy
    from threadpoolctl import threadpool_limits

    hs_1, sk_1 = [], []
    with threadpool_limits(1, user_api="blas"):
        while len(hs_1) < min_reps or (len(hs_1) < 15 and sum(hs_1) + sum(sk_1) < 2.0):
            t = time.perf_counter()
            LinearHead().fit(x_tr, y_tr)
            hs_1.append(time.perf_counter() - t)
            t = time.perf_counter()
            _sklearn_pipeline().fit(x_tr, y_tr)
            sk_1.append(time.perf_counter() - t)

        # robustness of the accuracy comparison: more seeded splits (fitted single-threaded: only accuracy counts)
        diffs = [acc_hs - acc_sk]
        for seed in range(1, seeds):
            a, b = split_indices(ds, seed)
            h_acc = LinearHead().fit(x[a], y[a]).score(x[b], y[b])
            diffs.append(h_acc - _sklearn_pipeline().fit(x[a], y[a]).score(x[b], y[b]))

        # LinearHead leaves dimensions with std < 1e-8 unscaled (they stay ~0); StandardScaler leaves exactly
        # constant ones alone too, but divides tiny-yet-nonzero spreads (e.g. 1e-33) up to unit variance
        std = x_tr.std(0)
        std64 = x_tr.std(0, dtype=np.float64)
        scaler_scale = pipe[0].scale_
        amplified = np.flatnonzero((std < 1e-8) & (scaler_scale != 1.0))
        res = {
            "features": name,
            "n_train": len(x_tr),
            "n_test": len(x_te),
            "dim": int(x_tr.shape[1]),
            "linear_head_accuracy": acc_hs,
            "sklearn_accuracy": acc_sk,
            "accuracy_diff_points": 100 * (acc_hs - acc_sk),
            "prediction_agreement": float(np.mean(np.asarray(head.predict(x_te)) == pipe.predict(x_te))),
            "accuracy_diff_points_per_seed": [round(100 * d, 2) for d in diffs],
            "accuracy_diff_points_mean_over_seeds": 100 * float(np.mean(diffs)),
            "linear_head_fit_s": [round(s, 4) for s in hs_t],
            "sklearn_fit_s": [round(s, 4) for s in sk_t],
            "time_ratio": min(hs_t) / min(sk_t),
            "time_ratio_median": statistics.median(hs_t) / statistics.median(sk_t),
            "blas1_linear_head_fit_s": [round(s, 4) for s in hs_1],
            "blas1_sklearn_fit_s": [round(s, 4) for s in sk_1],
            "constant_dims": int(np.sum(std < 1e-8) - len(amplified)),
            "near_constant_dims_scaled_by_sklearn_only": {
                int(i): {
                    "std_float32": float(std[i]),
                    "std_float64": float(std64[i]),
                    "sklearn_scale": float(scaler_scale[i]),
                }
                for i in amplified
            },
        }
        if len(amplified):
            keep = np.setdiff1d(np.arange(x.shape[1]), amplified)
            h2 = LinearHead().fit(x_tr[:, keep], y_tr)
            p2 = _sklearn_pipeline().fit(x_tr[:, keep], y_tr)
            agree = np.mean(np.asarray(h2.predict(x_te[:, keep])) == p2.predict(x_te[:, keep]))
            res["without_those_dims"] = {
                "linear_head_accuracy": float(h2.score(x_te[:, keep], y_te)),
                "sklearn_accuracy": float(p2.score(x_te[:, keep], y_te)),
                "prediction_agreement": float(agree),
            }
    return res


# ----------------------------------------------------------------------------------------------- 4. memory


def make_pngs(folder: Path, n: int, seed: int = 0) -> None:
    """n small RGB PNGs (64x64 digits with colour noise), flat in `folder` (an unlabelled image folder)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    folder.mkdir(parents=True)
    digits = load_digits().images
    rng = np.random.default_rng(seed)
    for i in range(n):
        d = np.kron(digits[i % len(digits)] * (255 / 16), np.ones((8, 8)))
        rgb = np.clip(d[..., None] + rng.normal(0, 20, (64, 64, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(rgb).save(folder / f"{i:05d}.png")


# Launches the CLI from a tiny Python process and reports RUSAGE_CHILDREN: a child forked straight from this
# (large) benchmark process would count this process's pages in its ru_maxrss until it execs.
_LAUNCHER = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[1:]); "
    "print('MAXRSS_KB', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(rc)"
)


def embed_peak_rss(folder: Path, out: Path) -> dict:
    """Run `headstart embed` in a subprocess; peak RSS of it (or of its DataLoader worker, whichever is larger)."""
    exe = Path(sys.executable).with_name("headstart")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "headstart.cli"]
    cmd += ["embed", str(folder), "--backbone", MEMORY_SPEC, "--out", str(out), "--no-cache", "--format", "json"]
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _LAUNCHER, *cmd], capture_output=True, text=True)
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    maxrss_kb = int(proc.stderr.rsplit("MAXRSS_KB", 1)[1].split()[0])
    shape = json.loads(proc.stdout)["shape"]
    return {"peak_rss_mb": maxrss_kb / 1024, "wall_s": wall, "shape": shape}


def memory(n: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="headstart-bench-mem-"))
    try:
        small, large = tmp / f"n{n}", tmp / f"n{10 * n}"
        make_pngs(small, n)
        make_pngs(large, 10 * n)
        a = embed_peak_rss(small, tmp / "small.npy")
        b = embed_peak_rss(large, tmp / "large.npy")
        floor = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, sys.executable, "-c", "import torch, torchvision, headstart.api"],
            capture_output=True,
            text=True,
        )
        floor_mb = int(floor.stderr.rsplit("MAXRSS_KB", 1)[1].split()[0]) / 1024
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {
        "command": f"headstart embed DIR --backbone {MEMORY_SPEC} --out X.npy --no-cache",
        "n": n,
        "small": a,
        "large": b,
        "ratio": b["peak_rss_mb"] / a["peak_rss_mb"],
        "import_floor_mb": floor_mb,
        "import_floor_note": "peak RSS of `python -c 'import torch, torchvision, headstart.api'`",
    }


# ----------------------------------------------------------------------------------------------- report


def fmt_table(rows: list[tuple[str, str, str, str, str]]) -> str:
    head = ("measure", "headstart", "reference", "ratio", "goal")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(5)]
    line = "  ".join("-" * w for w in widths)
    out = ["  ".join(str(c).ljust(w) for c, w in zip(head, widths)), line]
    out += ["  ".join(str(c).ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)


def verdict(ok: bool) -> str:
    return "ok" if ok else "BELOW GOAL"


def report(res: dict) -> str:
    rows = []
    for key in ("text", "image"):
        r = res["throughput"][key]
        rows.append(
            (
                f"1. extract {r['spec']} ({r['n_items']} items)",
                f"{r['headstart_items_per_s']:.2f} items/s",
                f"raw forward {r['raw_items_per_s']:.2f} items/s",
                f"{r['ratio']:.3f} (medians {r['ratio_median']:.3f}, paired {r['ratio_paired_median']:.3f})",
                f">= 0.9  {verdict(r['ratio'] >= 0.9)}",
            )
        )
        rows.append(
            (
                "   share of the headstart run spent in embed()",
                f"{r['headstart_s'][0]:.1f} s run",
                "its embed() calls",
                f"{r['forward_share_median']:.3f} (median of {len(r['forward_share_of_headstart_run'])})",
                f">= 0.9  {verdict(r['forward_share_median'] >= 0.9)}",
            )
        )
        if "ratio_vs_st_encode" in r:
            rows.append(
                (
                    "   same texts vs SentenceTransformer.encode",
                    f"{r['headstart_items_per_s']:.2f} items/s",
                    f"encode {r['st_encode_items_per_s']:.2f} items/s",
                    f"{r['ratio_vs_st_encode']:.3f} (medians {r['ratio_vs_st_encode_median']:.3f})",
                    f">= 0.9  {verdict(r['ratio_vs_st_encode'] >= 0.9)}",
                )
            )
    f = res["fit_twice"]
    rows.append(
        (
            f"2. api.fit twice ({f['n_items']} BBC articles, MiniLM)",
            f"2nd {f['second']['wall_s']:.2f} s",
            f"1st {f['first']['wall_s']:.2f} s",
            f"{f['speedup']:.1f}x faster",
            f">= 10x  {verdict(f['speedup'] >= 10)}",
        )
    )
    for h in res["heads"]:
        rows.append(
            (
                f"3. LinearHead on {h['features']} ({h['n_train']}/{h['n_test']})",
                f"acc {h['linear_head_accuracy']:.4f}",
                f"sklearn acc {h['sklearn_accuracy']:.4f}",
                f"{h['accuracy_diff_points']:+.2f} points",
                f"|d| <= 0.5  {verdict(abs(h['accuracy_diff_points']) <= 0.5)}",
            )
        )
        rows.append(
            (
                f"   fit time, best of {len(h['linear_head_fit_s'])}",
                f"{1000 * min(h['linear_head_fit_s']):.0f} ms",
                f"sklearn {1000 * min(h['sklearn_fit_s']):.0f} ms",
                f"{h['time_ratio']:.2f} (median {h['time_ratio_median']:.2f})",
                f"<= 1.0  {verdict(h['time_ratio'] <= 1.0)}",
            )
        )
    m = res["memory"]
    rows.append(
        (
            f"4. peak RSS, headstart embed {MEMORY_SPEC}",
            f"{10 * m['n']} imgs {m['large']['peak_rss_mb']:.0f} MB",
            f"{m['n']} imgs {m['small']['peak_rss_mb']:.0f} MB",
            f"{m['ratio']:.3f}",
            f"< 1.3  {verdict(m['ratio'] < 1.3)}",
        )
    )
    lines = [
        f"headstart extraction benchmarks ({res['mode']}), {res['env']['cpus']} CPUs, torch {res['env']['torch']} "
        f"({res['env']['torch_threads']} threads), load average at start {res['loadavg']['start']}",
        "",
        fmt_table(rows),
        "",
    ]
    for key in ("text", "image"):
        r = res["throughput"][key]
        extra = f", padded lengths {r['padded_lengths']}" if "padded_lengths" in r else ""
        lines.append(
            f"  {r['spec']}: headstart s {r['headstart_s']}, raw s {r['raw_s']}"
            + (f", encode s {r['st_encode_s']}" if "st_encode_s" in r else "")
            + f"; DataLoader workers {r['workers']}; max |headstart - raw| {r['max_abs_diff_vs_raw']:.2e}{extra}"
        )
    lines.append(
        f"  fit 1st timing {f['first']['timing_s']}, 2nd {f['second']['timing_s']}; "
        f"accuracy {f['first']['accuracy']:.4f} / {f['second']['accuracy']:.4f}"
    )
    for h in res["heads"]:
        lines.append(
            f"  heads on {h['features']}: LinearHead s {h['linear_head_fit_s']}, sklearn s {h['sklearn_fit_s']}; "
            f"predictions agree on {100 * h['prediction_agreement']:.1f}%; accuracy difference per split seed "
            f"{h['accuracy_diff_points_per_seed']} points, mean {h['accuracy_diff_points_mean_over_seeds']:+.2f}"
        )
        h1, s1 = h["blas1_linear_head_fit_s"], h["blas1_sklearn_fit_s"]
        lines.append(
            f"    with OpenBLAS at 1 thread (best of {len(h1)}): LinearHead {1000 * min(h1):.0f} ms "
            f"(median {1000 * statistics.median(h1):.0f}), sklearn {1000 * min(s1):.0f} ms "
            f"(median {1000 * statistics.median(s1):.0f}); {h['constant_dims']} exactly constant dims"
        )
        amp = h["near_constant_dims_scaled_by_sklearn_only"]
        if amp:
            w = h["without_those_dims"]
            shown = ", ".join(
                f"#{k} std {v['std_float32']:.1e} (float64 {v['std_float64']:.1e})" for k, v in amp.items()
            )
            lines.append(
                f"    {len(amp)} near-constant dims ({shown}): LinearHead (std < 1e-8) leaves them ~0, StandardScaler "
                f"blows them up to unit variance; without them: LinearHead {w['linear_head_accuracy']:.4f}, "
                f"sklearn {w['sklearn_accuracy']:.4f}, predictions agree on {100 * w['prediction_agreement']:.1f}%"
            )
    lines.append(
        f"  embed wall time: {m['n']} imgs {m['small']['wall_s']:.1f} s, "
        f"{10 * m['n']} imgs {m['large']['wall_s']:.1f} s; "
        f"peak RSS of just importing torch, torchvision, headstart.api: {m['import_floor_mb']:.0f} MB"
    )
    lines.append(f"  load average per section: {res['loadavg']}; total {res['total_s']:.0f} s")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions (under ~3 minutes)")
    ap.add_argument("--reps", type=int, default=None, help="repetitions for the throughput timings")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "extract.json")
    ap.add_argument("--text-n", type=int, default=None, help="BBC articles in the throughput test")
    ap.add_argument("--image-n", type=int, default=None, help="digits in the throughput test")
    args = ap.parse_args()
    cfg = dict(QUICK if args.quick else FULL)
    cfg.update({k: v for k, v in (("text_n", args.text_n), ("image_n", args.image_n)) if v})
    if args.reps:
        cfg["text_reps"] = cfg["image_reps"] = args.reps

    t_start = time.perf_counter()
    res: dict = {
        "mode": "quick" if args.quick else "full",
        "config": cfg,
        "env": {
            "cpus": os.cpu_count(),
            "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(),
            "machine": platform.machine(),
        },
        "loadavg": {"start": loadavg()},
        "throughput": {},
        "heads": [],
    }
    cache = FeatureCache()
    try:
        # images first: the DataLoader worker forks before any tokenizer thread pool exists
        log(f"1. image throughput: {IMAGE_SPEC}, {cfg['image_n']} digits x {cfg['image_reps']} reps")
        digits = load_data("samples:digits")
        img = create_backbone(IMAGE_SPEC)
        res["throughput"]["image"] = throughput(img, spread(digits, cfg["image_n"]).items, cfg["image_reps"], False)
        log(f"3a. caching {IMAGE_SPEC} features of {cfg['digits_n']} digits")
        digits_ds = digits.subset(range(cfg["digits_n"]))
        digits_x = extract_features(img, digits_ds, cache=cache, progress=False)
        res["loadavg"]["after_image"] = loadavg()
        del img

        log(f"1. text throughput: {TEXT_SPEC}, {cfg['text_n']} BBC articles x {cfg['text_reps']} reps")
        bbc = load_data("samples:bbc-news")
        txt = create_backbone(TEXT_SPEC)
        res["throughput"]["text"] = throughput(txt, spread(bbc, cfg["text_n"]).items, cfg["text_reps"], True)
        res["loadavg"]["after_text"] = loadavg()

        log(f"2. api.fit twice on {cfg['fit_n']} BBC articles (cache {_CACHE_DIR})")
        fit_ds = spread(bbc, cfg["fit_n"])
        res["fit_twice"] = fit_twice(fit_ds)
        res["loadavg"]["after_fit"] = loadavg()

        log("3. LinearHead vs scikit-learn on cached features")
        t = time.perf_counter()
        text_x = extract_features(txt, fit_ds, cache=cache, progress=False)  # written by section 2's api.fit
        res["heads_text_features_read_s"] = time.perf_counter() - t
        res["heads"].append(head_vs_sklearn(f"MiniLM/bbc-news[{len(fit_ds)}]", fit_ds, text_x))
        res["heads"].append(head_vs_sklearn(f"EfficientNet/digits[{cfg['digits_n']}]", digits_ds, digits_x))
        res["loadavg"]["after_heads"] = loadavg()
        del txt

        log(f"4. peak RSS of `headstart embed` on {cfg['mem_n']} and {10 * cfg['mem_n']} PNGs")
        res["memory"] = memory(cfg["mem_n"])
        res["loadavg"]["after_memory"] = loadavg()
    finally:
        shutil.rmtree(_CACHE_DIR, ignore_errors=True)
    res["total_s"] = time.perf_counter() - t_start

    res["goals"] = {
        "text_throughput_ratio>=0.9": res["throughput"]["text"]["ratio"] >= 0.9,
        "text_vs_st_encode>=0.9": res["throughput"]["text"]["ratio_vs_st_encode"] >= 0.9,
        "image_throughput_ratio>=0.9": res["throughput"]["image"]["ratio"] >= 0.9,
        "text_forward_share>=0.9": res["throughput"]["text"]["forward_share_median"] >= 0.9,
        "image_forward_share>=0.9": res["throughput"]["image"]["forward_share_median"] >= 0.9,
        "fit_second_time_speedup>=10": res["fit_twice"]["speedup"] >= 10,
        **{f"head_accuracy_within_0.5pt[{h['features']}]": abs(h["accuracy_diff_points"]) <= 0.5 for h in res["heads"]},
        **{f"head_time_ratio<=1[{h['features']}]": h["time_ratio"] <= 1.0 for h in res["heads"]},
        "embed_peak_rss_ratio<1.3": res["memory"]["ratio"] < 1.3,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=2) + "\n")
    print(report(res))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
