"""What `fit`'s default costs: `auto` (the default since 2026-12-02) against the probe it used to be, and what the
content-seeded audio copies save `auto` on a cold cache.

    python benchmarks/default_fit.py [--sets bbc,digits,spoken] [--budgets 16,all] [--seed 0] [--out PATH]

1. For each shipped sample and label budget, in this process, on a warm feature cache (a first unscored fit of each
   warms it): `hs.fit(data, strategy="probe")` and `hs.fit(data)` (the default, auto's cheap candidates), each with
   the held-out split and the refit on every label, as a user's `fit` runs. Prints test accuracy, wall seconds and
   the ratio default / probe.
2. Spoken digits, an empty cache for every run: `hs.fit(data)` with the probe's noisy copies seeded by each clip's
   samples (now) and by its index in the list (before 1074853, emulated here by replacing the key), so that every
   fold of `auto` and the refit drew new copies. Prints seconds and the ratio index / content.

Writes benchmarks/results/default_fit.json. Run alone on the machine: the figures are wall times.
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

RESULTS = Path(__file__).parent / "results" / "default_fit.json"
SETS = {  # the shipped samples with each modality's default backbone
    "bbc": "samples:bbc-news",
    "digits": "samples:digits",
    "spoken": "samples:spoken-digits",
}


def timed_fit(source: str, budget: int | None, seed: int, **options: Any) -> dict[str, Any]:
    import headstart as hs

    t0 = time.perf_counter()
    model = hs.fit(source, labels_per_class=budget, seed=seed, progress=False, **options)
    return {
        "seconds": round(time.perf_counter() - t0, 2),
        "accuracy": round(model.metrics["label"]["accuracy"], 4),
        "strategy": model.report["strategy"],
        "chosen": model.report.get("chosen", model.backbone_spec),
    }


def default_against_probe(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each fit in a fresh process (timed inside it, imports excluded) on the cache a first fit filled, as a user's
    second `headstart fit` on the same data runs: nothing remembered in memory from another fit helps it."""
    rows = []
    for name in args.sets.split(","):
        for label in args.budgets.split(","):
            run_child(f"fit,{name},{label},warm", args.seed)  # fills the feature cache
            probe = run_child(f"fit,{name},{label},probe", args.seed)
            default = run_child(f"fit,{name},{label},default", args.seed)
            row = {"set": name, "labels_per_class": label, "probe": probe, "default": default,
                   "ratio": round(default["seconds"] / probe["seconds"], 1)}  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def run_child(spec: str, seed: int, env: dict[str, str] | None = None) -> dict[str, Any]:
    import subprocess
    import sys

    cmd = [sys.executable, __file__, "--child", spec, "--seed", str(seed)]
    out = subprocess.run(cmd, env=env or dict(os.environ), capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def index_seeded() -> Any:
    """A stand-in for `augmented.clip_key` that numbers the clips of each `audio_views` call 0, 1, 2, ... in order:
    the copies are then seeded by index, as before content seeding."""
    from headstart.features import augmented

    original = augmented.audio_views
    counter = {"next": 0}

    def numbered(wave: Any) -> int:
        counter["next"] += 1
        return counter["next"] - 1

    def views(*a: Any, **k: Any) -> Any:
        counter["next"] = 0
        return original(*a, **k)

    return numbered, views


def copies_cold(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Each run in a fresh process with an empty cache, so nothing read before (on disk or in memory) helps it."""
    rows = []
    for label in args.budgets.split(","):
        row: dict[str, Any] = {"set": "spoken", "labels_per_class": label}
        for seeding in ("content", "index"):
            with tempfile.TemporaryDirectory() as cache:
                row[seeding] = run_child(f"copies,spoken,{label},{seeding}", args.seed,
                                         {**os.environ, "HEADSTART_CACHE": cache})  # fmt: skip
        row["ratio"] = round(row["index"]["seconds"] / row["content"]["seconds"], 2)
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def child(spec: str, seed: int) -> None:
    """One timed fit: `fit,SET,BUDGET,warm|probe|default` or `copies,spoken,BUDGET,content|index` (the default)."""
    from headstart.features import augmented

    kind, name, label, variant = spec.split(",")
    budget = None if label == "all" else int(label)
    options: dict[str, Any] = {}
    if variant in ("warm", "probe"):
        options = {"strategy": "probe", **({"baseline": False} if variant == "warm" else {})}
    if variant == "index":
        augmented.clip_key, augmented.audio_views = index_seeded()
    print(json.dumps(timed_fit(SETS[name], budget, seed, **options)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default="bbc,digits,spoken")
    parser.add_argument("--budgets", default="16,all")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child, args.seed)
    started = time.perf_counter()
    default = default_against_probe(args)
    cold = copies_cold(args)
    print("\n| set | labels/class | probe: accuracy, s | default (auto): accuracy, s, chose | default / probe |")
    print("|---|---|---|---|---|")
    for r in default:
        p, d = r["probe"], r["default"]
        print(f"| {r['set']} | {r['labels_per_class']} | {p['accuracy']:.3f}, {p['seconds']:.1f} | "
              f"{d['accuracy']:.3f}, {d['seconds']:.1f}, {d['chosen']} | {r['ratio']:.1f}x |")  # fmt: skip
    print("\n| spoken, cold cache | copies seeded by content: s | by index: s | index / content |")
    print("|---|---|---|---|")
    for r in cold:
        print(f"| {r['labels_per_class']} | {r['content']['seconds']:.1f} | {r['index']['seconds']:.1f} | "
              f"{r['ratio']:.2f}x |")  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"command": "python benchmarks/default_fit.py " + " ".join(f"--{k} {v}" for k, v in vars(args).items()
                                                                       if k not in ("out", "child")),
               "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
               "default_against_probe": default, "copies_cold_cache": cold,
               "wall_s": round(time.perf_counter() - started, 1)}  # fmt: skip
    args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
