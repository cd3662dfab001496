"""Pretraining benchmark: which objective gives digits features that beat raw pixels with 10 labels per class?

    nice python benchmarks/pretrain.py [--seeds 5] [--labels-per-class 10] [--threads 1] [--only simclr,gan]

For each seed: a stratified split of samples:digits (test 25 %, seeded); every method pretrains on the training
split's images WITHOUT labels (the test split is never seen); then a linear probe (standardised features + logistic
regression, C=0.1 — headstart's raw-pixel baseline) is fitted on 10 labelled items per class (seeded choice) and
scored on the test split. Baselines on the same items: raw pixels (64-d) and PCA-32 of pixels (fitted on the same
unlabelled pool). Prints and writes mean ± std over seeds, pretraining throughput (samples/s, the mean over
epochs after the first) and wall time per method: benchmarks/results/pretrain.{json,md,png}.
The machine may be shared: the load average is recorded. `--threads 1` is the default because two OpenMP threads
on a loaded 2-core machine run a small model many times slower than one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results"

# name -> pretrain() keyword arguments (the tuned settings)
METHODS: dict[str, dict[str, Any]] = {
    "autoencoder (dense, classic)": dict(method="autoencoder"),
    "autoencoder (denoising)": dict(method="autoencoder", variant="denoising"),
    "autoencoder (conv)": dict(method="autoencoder", variant="conv", epochs=50, batch_size=64),
    "gan (DCGAN, 16 px)": dict(method="gan", epochs=15),
    "contrastive (SimCLR, CNN 16 px)": dict(method="contrastive", epochs=20),
}
SHORT = dict(zip(("dense", "denoising", "conv", "gan", "simclr"), METHODS))


def probe(x: np.ndarray, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000, random_state=seed))
    model.fit(x[train], y[train])
    return float((model.predict(x[test]) == y[test]).mean())


def one_seed(seed: int, args: argparse.Namespace, methods: dict[str, dict[str, Any]], work: Path) -> dict[str, Any]:
    from sklearn.decomposition import PCA

    import headstart as hs
    from headstart.data import Dataset, split
    from headstart.evaluation.baselines import raw_pixels
    from headstart.features import extract_features

    ds = hs.load_dataset("samples:digits")
    indexed = Dataset(ds.modality, ds.items, ds.targets, [str(i) for i in range(len(ds))], ds.source)
    train_all, test = split(indexed, test_size=0.25, seed=seed)
    labelled, _ = split(indexed, test_size=0.25, seed=seed, labels_per_class=args.labels_per_class)
    train_idx = np.array([int(w) for w in train_all.where])
    few = np.array([int(w) for w in labelled.where])
    test_idx = np.array([int(w) for w in test.where])
    y = np.asarray(ds.labels)
    pool = ds.subset(train_idx)
    pool.targets = {}

    pixels = raw_pixels(ds.items)
    pca = PCA(n_components=32, random_state=seed).fit(pixels[train_idx])
    row: dict[str, Any] = {
        "seed": seed,
        "raw pixels (64-d)": probe(pixels, y, few, test_idx, seed),
        "PCA-32 of pixels": probe(pca.transform(pixels), y, few, test_idx, seed),
    }
    for name, kwargs in methods.items():
        t0 = time.perf_counter()
        result = hs.pretrain(pool, out=work / f"{name}-{seed}", seed=seed, progress=False, **kwargs)
        wall = time.perf_counter() - t0
        x = extract_features(result.backbone, ds, cache=False, progress=False)
        later = result.history[1:] or result.history
        row[name] = probe(x, y, few, test_idx, seed)
        row[f"{name} | samples/s"] = float(np.mean([h["samples_per_s"] for h in later]))
        row[f"{name} | seconds"] = wall
        row[f"{name} | dim"] = int(x.shape[1])
        print(f"  seed {seed}: {name}: {row[name]:.4f} ({x.shape[1]}-d, {wall:.0f} s)", flush=True)
    print(f"  seed {seed}: raw {row['raw pixels (64-d)']:.4f}, PCA-32 {row['PCA-32 of pixels']:.4f}", flush=True)
    return row


def summarise(rows: list[dict[str, Any]], methods: list[str]) -> list[dict[str, Any]]:
    table = []
    for name in ["raw pixels (64-d)", "PCA-32 of pixels", *methods]:
        accs = np.array([r[name] for r in rows])
        std = float(accs.std(ddof=1)) if len(accs) > 1 else 0.0
        entry = {"representation": name, "mean": float(accs.mean()), "std": std, "per_seed": accs.tolist()}
        if name in methods:
            entry["dim"] = rows[0][f"{name} | dim"]
            entry["samples_per_s"] = float(np.mean([r[f"{name} | samples/s"] for r in rows]))
            entry["seconds"] = float(np.mean([r[f"{name} | seconds"] for r in rows]))
            entry["wins_vs_raw"] = int(sum(r[name] > r["raw pixels (64-d)"] for r in rows))
        table.append(entry)
    return table


def markdown(table: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    raw = table[0]["mean"]
    lines = [
        f"Linear probe on samples:digits, {meta['labels_per_class']} labels per class, test accuracy, "
        f"mean ± std over {meta['seeds']} seeds (split, labelled items and pretraining all seeded).",
        "",
        "| representation | dim | accuracy | vs raw pixels | pretraining samples/s | s per run | beats raw |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for e in table:
        dim = e.get("dim", 64 if e["representation"].startswith("raw") else 32)
        extra = (f"{e['samples_per_s']:.0f} | {e['seconds']:.1f} | {e['wins_vs_raw']}/{meta['seeds']}"
                 if "samples_per_s" in e else "- | - | -")  # fmt: skip
        lines.append(
            f"| {e['representation']} | {dim} | {e['mean']:.4f} ± {e['std']:.4f} | {e['mean'] - raw:+.4f} | {extra} |"
        )
    lines += ["", f"Command: `{meta['command']}`; {meta['threads']} torch thread(s); load average at start "
              f"{meta['load_start']:.1f}, at end {meta['load_end']:.1f}; total {meta['seconds']:.0f} s."]  # fmt: skip
    return "\n".join(lines) + "\n"


def figure(table: list[dict[str, Any]], path: Path, meta: dict[str, Any]) -> None:
    from headstart.evaluation.plots import _pyplot

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    names = [e["representation"] for e in table]
    means, stds = [e["mean"] for e in table], [e["std"] for e in table]
    colours = ["grey", "grey"] + ["tab:blue"] * (len(table) - 2)
    ax.barh(range(len(table)), means, xerr=stds, color=colours, capsize=3)
    ax.axvline(table[0]["mean"], color="black", linestyle=":", lw=1, label="raw pixels")
    ax.set_yticks(range(len(table)), names, fontsize=8)
    ax.invert_yaxis()
    lo = min(means) - 0.08
    ax.set_xlim(max(0.0, lo), 1.0)
    ax.set_xlabel(
        f"test accuracy, linear probe, {meta['labels_per_class']} labels/class (mean ± std, {meta['seeds']} seeds)"
    )
    ax.set_title("samples:digits: pretraining on the unlabelled training split", fontsize=10)
    for i, (m, sd) in enumerate(zip(means, stds)):
        ax.text(m + sd + 0.004, i, f"{m:.3f}", va="center", fontsize=8)  # right of the error bar
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--only", default=None, help=f"comma-separated subset of: {', '.join(SHORT)}")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    methods = {SHORT[k]: METHODS[SHORT[k]] for k in args.only.split(",")} if args.only else METHODS
    load_start, t0 = os.getloadavg()[0], time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="headstart-pretrain-bench-") as work:
        rows = [one_seed(seed, args, methods, Path(work)) for seed in range(args.seeds)]
    meta = {
        "seeds": args.seeds,
        "labels_per_class": args.labels_per_class,
        "threads": args.threads,
        "command": "python benchmarks/pretrain.py"
        + (f" --only {args.only}" if args.only else "")
        + (f" --seeds {args.seeds}" if args.seeds != 5 else ""),
        "load_start": load_start,
        "load_end": os.getloadavg()[0],
        "seconds": time.perf_counter() - t0,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "settings": {name: {k: v for k, v in kw.items()} for name, kw in methods.items()},
    }
    table = summarise(rows, list(methods))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "pretrain.json").write_text(json.dumps({"meta": meta, "table": table, "rows": rows}, indent=2))
    md = markdown(table, meta)
    (args.out / "pretrain.md").write_text(md)
    figure(table, args.out / "pretrain.png", meta)
    print(md)


if __name__ == "__main__":
    main()
