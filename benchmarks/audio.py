"""Audio benchmark: spoken digits with held-out voices, clean and with white noise at 10 dB and 0 dB SNR.

    python benchmarks/audio.py [--quick] [--seed S] [--out PATH]

1. accuracy and wall time of four methods on the same group-wise split of samples:spoken-digits (test voices are
   never heard in training; noise is added to the test clips only, seeded):
   - headstart:speech-embedding features + linear head (probe),
   - headstart:speech-embedding fine-tuned (`--strategy finetune`, `--augment light` unless told otherwise),
   - headstart:logmel-cnn trained from scratch (random init, the whole network at the head's learning rate),
   - log-mel + logistic regression (the quickstart's audio baseline).
   Wall time: training (extraction included) for each method, then evaluation per condition.
2. extraction throughput: `extract_features(..., cache=False)` / the raw `backbone.embed` forward on the same,
   pre-collated batches, measured in this run for speech-embedding and logmel-cnn (best of the interleaved reps).

The default run takes about 4 minutes on 2 idle CPU cores (up to about 10 on a busy machine); `--quick` (fewer
epochs, fewer clips for throughput) about 2.
Writes benchmarks/results/audio.json (or --out) and prints a markdown table.
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

ROOT = Path(__file__).resolve().parent
SPEECH = "headstart:speech-embedding"
LOGMEL = "headstart:logmel-cnn"
CONDITIONS = (("clean", None), ("10 dB", 10.0), ("0 dB", 0.0))

FULL = {"ft_epochs": 6, "scratch_epochs": 25, "throughput_n": 128, "reps": 2}
QUICK = {"ft_epochs": 1, "scratch_epochs": 4, "throughput_n": 32, "reps": 1}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def test_sets(test, seed: int) -> dict:
    from headstart.data.audio import with_noise

    return {name: test if snr is None else with_noise(test, snr, seed=seed) for name, snr in CONDITIONS}


def head_method(name: str, train_fn, tests: dict) -> dict:
    """Train once (timed), then evaluate the model on every condition (each timed)."""
    from headstart import api

    t0 = time.perf_counter()
    model = train_fn()
    row = {"method": name, "train_s": round(time.perf_counter() - t0, 2), "accuracy": {}, "eval_s": {}}
    for cond, ds in tests.items():
        t0 = time.perf_counter()
        report = api.evaluate(model, ds, progress=False)
        row["eval_s"][cond] = round(time.perf_counter() - t0, 2)
        row["accuracy"][cond] = round(report["tasks"]["label"]["accuracy"], 4)
        log(f"{name}: {cond} accuracy {row['accuracy'][cond]:.4f}")
    return row


def baseline_method(train, tests: dict, seed: int) -> dict:
    from headstart.evaluation.baselines import baseline_predict

    row = {"method": "log-mel + logistic regression", "train_s": None, "accuracy": {}, "eval_s": {}}
    for cond, ds in tests.items():
        t0 = time.perf_counter()
        pred = baseline_predict(train, ds, "label", seed=seed)  # refits each time: its time includes training
        row["eval_s"][cond] = round(time.perf_counter() - t0, 2)
        row["accuracy"][cond] = round(sum(p == y for p, y in zip(pred, ds.labels)) / len(ds), 4)
        log(f"baseline: {cond} accuracy {row['accuracy'][cond]:.4f}")
    return row


def throughput(spec: str, items: list, reps: int) -> dict:
    """headstart extraction vs the raw forward on pre-collated batches, interleaved; best of `reps`."""
    import numpy as np
    import torch

    from headstart.backbones import create_backbone
    from headstart.features.extract import extract_features, iter_batches

    bb = create_backbone(spec)
    batches = list(iter_batches(bb, items, [f"#{i}" for i in range(len(items))], batch_size=32, num_workers=0))
    with torch.inference_mode():  # warm-up (oneDNN primitives for this batch shape, allocator): both paths once
        bb.embed(batches[0])
    extract_features(bb, items[:32], batch_size=32, cache=False, progress=False)
    hs_s, raw_s = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        x = extract_features(bb, items, batch_size=32, cache=False, progress=False)
        hs_s.append(time.perf_counter() - t0)
        bb.module.eval()
        t0 = time.perf_counter()
        with torch.inference_mode():
            raw = torch.cat([bb.embed(b) for b in batches]).float().numpy()
        raw_s.append(time.perf_counter() - t0)
    n = len(items)
    return {
        "spec": spec,
        "n_items": n,
        "headstart_items_per_s": round(n / min(hs_s), 2),
        "raw_forward_items_per_s": round(n / min(raw_s), 2),
        "ratio": round(min(raw_s) / min(hs_s), 3),
        "headstart_s": [round(s, 3) for s in hs_s],
        "raw_s": [round(s, 3) for s in raw_s],
        "max_abs_diff_vs_raw": float(np.abs(x - raw).max()),
        "note": "the raw forward starts from decoded, resampled, windowed batches; headstart's run decodes too",
    }


def markdown(result: dict) -> str:
    conds = [c for c, _ in CONDITIONS]
    lines = [
        f"spoken digits, held-out voices: {result['n_train']} train clips ({result['train_voices']} voices), "
        f"{result['n_test']} test clips ({result['test_voices']} voices), seed {result['seed']}",
        "",
        "| method | " + " | ".join(f"acc. {c}" for c in conds) + " | train s | eval s (clean) |",
        "|---|" + "---|" * len(conds) + "---|---|",
    ]
    for r in result["methods"]:
        accs = " | ".join(f"{r['accuracy'][c]:.4f}" for c in conds)
        train = "-" if r["train_s"] is None else f"{r['train_s']:.1f}"
        lines.append(f"| {r['method']} | {accs} | {train} | {r['eval_s']['clean']:.1f} |")
    lines += ["", "| backbone | headstart items/s | raw forward items/s | ratio |", "|---|---|---|---|"]
    for t in result["throughput"]:
        lines.append(f"| {t['spec']} | {t['headstart_items_per_s']} | {t['raw_forward_items_per_s']} | {t['ratio']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer epochs and clips: about 2-3 minutes")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--augment", choices=("none", "light", "strong"), default="light", help="for the trained ones")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "audio.json")
    args = parser.parse_args()
    cfg = QUICK if args.quick else FULL
    os.environ.setdefault("HEADSTART_CACHE", tempfile.mkdtemp(prefix="headstart-bench-audio-"))

    from headstart import api
    from headstart.data import load_data, split

    started = time.perf_counter()
    t0 = time.perf_counter()
    ds = load_data("samples:spoken-digits")
    sample_s = time.perf_counter() - t0
    train, test = split(ds, seed=args.seed)
    tests = test_sets(test, args.seed)
    log(f"{len(train)} train / {len(test)} test clips; test voices: {', '.join(sorted(set(test.groups)))}")
    common = {"seed": args.seed, "progress": False, "baseline": False}
    ft = {"strategy": "finetune", "augment": args.augment, "batch_size": 16}
    methods = [
        head_method("speech-embedding + linear head (probe)", lambda: api.fit(ds, backbone=SPEECH, **common), tests),
        head_method(
            "speech-embedding fine-tuned",
            lambda: api.fit(ds, backbone=SPEECH, epochs=cfg["ft_epochs"], **ft, **common),
            tests,
        ),
        head_method(
            "log-mel CNN from scratch",
            lambda: api.fit(
                ds, backbone=LOGMEL, epochs=cfg["scratch_epochs"], lr=3e-3, backbone_lr_mult=1.0, **ft, **common
            ),
            tests,
        ),
        baseline_method(train, tests, args.seed),
    ]
    sub = ds.subset(range(0, len(ds), max(1, len(ds) // cfg["throughput_n"])))
    items = list(sub.items[: cfg["throughput_n"]])
    log("throughput ...")
    rates = [throughput(spec, items, cfg["reps"]) for spec in (SPEECH, LOGMEL)]
    result = {
        "benchmark": "audio",
        "quick": args.quick,
        "seed": args.seed,
        "config": {**cfg, "augment": args.augment},
        "n_train": len(train),
        "n_test": len(test),
        "train_voices": len(set(train.groups)),
        "test_voices": len(set(test.groups)),
        "test_voice_names": sorted(set(test.groups)),
        "sample_build_or_load_s": round(sample_s, 2),
        "methods": methods,
        "throughput": rates,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_end": loadavg()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(markdown(result))
    log(f"done in {result['wall_s']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
