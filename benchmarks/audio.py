"""Audio benchmark: spoken digits with held-out voices, clean and with white noise at 10 dB and 0 dB SNR.

    python benchmarks/audio.py [--seeds 0,1,2] [--ft-epochs 4] [--no-finetune] [--out PATH]

On the group-wise split of samples:spoken-digits (the test voices are never heard in training; noise is added to the
test clips only, seeded per clip), for each seed, accuracy of:
   - the speech-embedding probe (frozen features + headstart's linear head) with the original options
     (`?trim=1&window=1&pool=mean`: silence trimmed, a 1 s window, mean pooling) and with the new defaults
     (no trimming, a 2 s window, mean+max pooling over the frames that hold audio); each also with the head trained
     on the original features plus the features of 2 augmented copies of every training clip
     (`headstart.features.augmented.training_views`: noise at 0-20 dB SNR, gain, time shift);
   - pooling alone compared on the new window (mean, mean+max, mean+std), probe with augmented views;
   - speech-embedding fine-tuned (`strategy="finetune"`, `--augment strong`: noise at 0-20 dB among others) with the
     original options and with the new defaults;
   - log-mel + logistic regression (the fit report's baseline; it keeps its trimmed, fixed 1 s window).
Then mean and standard deviation over the seeds. Features go through the feature cache (a fresh temporary one unless
HEADSTART_CACHE is set), so the probes share one extraction per backbone spec and condition.

Writes benchmarks/results/audio_noise.json (or --out) after every step and prints a markdown table. About 17 minutes
on 2 busy CPU cores with fine-tuning (3 seeds x 2 fine-tunes dominate); `--no-finetune` about 8 minutes cold, 3 with
the features already in HEADSTART_CACHE.
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
OLD = "headstart:speech-embedding?pool=mean&trim=1&window=1"
NEW = "headstart:speech-embedding"
POOLING = {"mean": f"{NEW}?pool=mean", "mean+max": NEW, "mean+std": f"{NEW}?pool=meanstd"}
CONDITIONS = (("clean", None), ("10 dB", 10.0), ("0 dB", 0.0))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def test_sets(test, seed: int) -> dict:
    from headstart.data.audio import with_noise

    return {name: test if snr is None else with_noise(test, snr, seed=seed) for name, snr in CONDITIONS}


def probe_rows(spec: str, train, tests: dict, seed: int, views: bool) -> dict:
    """{"plain": accuracies, "views": accuracies}: a linear head on frozen features, without / with augmented views."""
    import numpy as np

    from headstart.backbones import create_backbone
    from headstart.features import extract_features
    from headstart.heads import make_head
    from headstart.probe import fit_heads

    bb = create_backbone(spec)
    x = extract_features(bb, train, progress=False)
    y = list(train.targets["label"])
    xs = {cond: extract_features(bb, ds, progress=False) for cond, ds in tests.items()}
    heads = {"plain": make_head("linear", random_state=seed).fit(x, y)}
    if views:  # the probe as `fit` runs it: views added and kept with their clip in the head's cross-validation
        heads["views"] = fit_heads(bb, train, x, "linear", {"random_state": seed}, seed=seed)["label"]
    out = {}
    for name, head in heads.items():
        out[name] = {
            cond: round(float(np.mean(np.asarray(head.predict(xs[cond])) == np.asarray(ds.labels))), 4)
            for cond, ds in tests.items()
        }
        log(f"probe {spec} ({name}): {out[name]}; head chose {getattr(head, 'chosen_', {})}")
    return out


def finetune_row(spec: str, train, tests: dict, seed: int, epochs: int, augment: str) -> dict:
    """Fine-tuned on the training voices only (`refit=False`: fit would otherwise retrain on the test voices too)."""
    from headstart import api

    t0 = time.perf_counter()
    model = api.fit(
        train,
        test=tests["clean"],
        refit=False,
        backbone=spec,
        strategy="finetune",
        epochs=epochs,
        augment=augment,
        batch_size=16,
        seed=seed,
        progress=False,
        baseline=False,
    )
    acc = {}
    for cond, test in tests.items():
        report = api.evaluate(model, test, progress=False)
        acc[cond] = round(report["tasks"]["label"]["accuracy"], 4)
    log(f"fine-tuned {spec} seed {seed} ({time.perf_counter() - t0:.0f} s): {acc}")
    return acc


def baseline_row(train, tests: dict, seed: int) -> dict:
    from headstart.evaluation.baselines import baseline_predict

    acc = {}
    for cond, ds in tests.items():
        pred = baseline_predict(train, ds, "label", seed=seed)
        acc[cond] = round(sum(p == y for p, y in zip(pred, ds.labels)) / len(ds), 4)
    log(f"baseline seed {seed}: {acc}")
    return acc


def summarise(per_seed: list[dict]) -> dict:
    """{method: {cond: {"mean", "std", "runs"}}} over the seeds that have it."""
    import numpy as np

    methods = {m for run in per_seed for m in run}
    out = {}
    for method in sorted(methods):
        runs = [run[method] for run in per_seed if method in run]
        out[method] = {
            cond: {
                "mean": round(float(np.mean([r[cond] for r in runs])), 4),
                "std": round(float(np.std([r[cond] for r in runs])), 4),
                "runs": [r[cond] for r in runs],
            }
            for cond, _ in CONDITIONS
        }
    return out


ORDER = (
    "probe, old options",
    "probe, old options + augmented views",
    "probe, new defaults",
    "probe, new defaults + augmented views",
    "probe, 2 s window, mean pooling",
    "probe, 2 s window, mean+max pooling",
    "probe, 2 s window, mean+std pooling",
    "probe, 2 s window, mean pooling + views",
    "probe, 2 s window, mean+max pooling + views",
    "probe, 2 s window, mean+std pooling + views",
    "fine-tuned, old options",
    "fine-tuned, new defaults",
    "log-mel + logistic regression (trimmed, 1 s window)",
)


def markdown(result: dict) -> str:
    conds = [c for c, _ in CONDITIONS]
    lines = [
        f"spoken digits, held-out voices: {result['n_train']} train clips, {result['n_test']} test clips per split; "
        f"seeds {result['seeds']}; mean ± std; noise on the test clips only",
        "",
        "| method | " + " | ".join(conds) + " |",
        "|---|" + "---|" * len(conds),
    ]
    summary = result["summary"]
    for method in [m for m in ORDER if m in summary] + [m for m in summary if m not in ORDER]:
        cells = " | ".join(f"{summary[method][c]['mean']:.3f} ± {summary[method][c]['std']:.3f}" for c in conds)
        n = len(summary[method][conds[0]]["runs"])
        lines.append(f"| {method}{'' if n == len(result['seeds']) else f' ({n} of the seeds)'} | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--ft-epochs", type=int, default=4)
    parser.add_argument("--augment", choices=("none", "light", "strong"), default="strong", help="for fine-tuning")
    parser.add_argument("--no-finetune", action="store_true", help="probes and baseline only (minutes)")
    parser.add_argument("--no-pooling", action="store_true", help="skip the pooling comparison")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "audio_noise.json")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    os.environ.setdefault("HEADSTART_CACHE", tempfile.mkdtemp(prefix="headstart-bench-audio-"))

    from headstart.data import load_data, split

    started = time.perf_counter()
    ds = load_data("samples:spoken-digits")
    per_seed: list[dict] = []
    voices: dict[int, list[str]] = {}
    splits = {}
    for seed in seeds:
        train, test = split(ds, seed=seed)
        splits[seed] = (train, test_sets(test, seed))
        voices[seed] = sorted(set(test.groups))

    def save() -> dict:
        """Written after every step, so an interrupted run still leaves its results."""
        train, tests = splits[seeds[0]]
        result = {
            "benchmark": "audio_noise",
            "seeds": seeds,
            "config": {
                "old": OLD,
                "new": NEW,
                "ft_epochs": args.ft_epochs,
                "ft_augment": args.augment,
                "views": "2 copies per clip: white noise 0-20 dB SNR, gain +-6 dB, shift +-0.1 s",
                "finetune": not args.no_finetune,
            },
            "n_train": len(train),
            "n_test": len(tests["clean"]),
            "test_voices": voices,
            "per_seed": per_seed,
            "summary": summarise(per_seed),
            "wall_s": round(time.perf_counter() - started, 1),
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "loadavg_end": os.getloadavg()},
            "command": "python " + " ".join(sys.argv),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        return result

    for seed in seeds:  # the probes for every seed first (minutes), then the fine-tunes (most of the time)
        train, tests = splits[seed]
        log(f"seed {seed}: {len(train)} train / {len(tests['clean'])} test clips; test voices: {voices[seed]}")
        row: dict = {}
        per_seed.append(row)
        for label, spec in (("old options", OLD), ("new defaults", NEW)):
            r = probe_rows(spec, train, tests, seed, views=True)
            row[f"probe, {label}"] = r["plain"]
            row[f"probe, {label} + augmented views"] = r["views"]
        if not args.no_pooling:
            for how, spec in POOLING.items():
                r = probe_rows(spec, train, tests, seed, views=True)
                row[f"probe, 2 s window, {how} pooling"] = r["plain"]
                row[f"probe, 2 s window, {how} pooling + views"] = r["views"]
        row["log-mel + logistic regression (trimmed, 1 s window)"] = baseline_row(train, tests, seed)
        save()
    if not args.no_finetune:
        for seed, row in zip(seeds, per_seed):
            train, tests = splits[seed]
            for label, spec in (("new defaults", NEW), ("old options", OLD)):
                row[f"fine-tuned, {label}"] = finetune_row(spec, train, tests, seed, args.ft_epochs, args.augment)
                save()
    result = save()
    print(markdown(result))
    log(f"done in {result['wall_s']} s; wrote {args.out}")


if __name__ == "__main__":
    main()
