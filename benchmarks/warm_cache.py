"""Warm vs cold `rank`: what a run over cached features costs now that backbones are built lazily.

    python benchmarks/warm_cache.py [--modality text|image|both] [--labels-per-class N] [--scores logme,...]
                                    [--repeat R] [--out PATH]

Each run is a fresh Python process timed end to end (imports included), as a user's `headstart rank` would be:

- cold: an empty $HEADSTART_CACHE (a temporary folder): every backbone is loaded and every item embedded;
- warm, eager: the same command again, every backbone built at once as before lazy backbones (the run forces
  `backbone.module` right after `create_backbone`): what a warm run cost before;
- warm: the same command again as it runs now: features, and the facts about each backbone, come from the cache.

text: `rank` of st:all-MiniLM-L6-v2 and st:all-MiniLM-L6-v2?init=random on samples:bbc-news (default 96 labelled
items per class: 480 texts). image: headstart:efficientnet-lite0 and its ?init=random on samples:digits (default 20
per class: 200 images). Every score `rank` computes by default, the linear probe included. Prints a table with the
ratios against the cold run, and the networks each run built; writes benchmarks/results/warm_cache.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CANDIDATES = {
    "text": ("samples:bbc-news", ["st:all-MiniLM-L6-v2", "st:all-MiniLM-L6-v2?init=random"], 96),
    "image": ("samples:digits", ["headstart:efficientnet-lite0", "headstart:efficientnet-lite0?init=random"], 20),
}
MODES = ("cold", "warm-eager", "warm")


def child(modality: str, mode: str, labels_per_class: int, scores: list[str] | None) -> None:
    """One `rank` in this process; prints a JSON line: seconds in rank, networks built, the ranking's scores."""
    t_import = time.perf_counter()
    import headstart as hs
    from headstart.backbones import create_backbone, st_source
    from headstart.backbones.base import Backbone
    from headstart.select import ranking

    imported = time.perf_counter() - t_import
    built = {"n": 0, "inside": 0}  # networks built: lazy builds, and sentence-transformers loads outside them
    materialise, load_model = Backbone._materialise, st_source._load_model

    def counting_materialise(self: Backbone) -> None:
        built["n"] += type(self).__name__ != "SourceClassifier"  # that one only takes its backbone's module
        built["inside"] += 1
        try:
            materialise(self)
        finally:
            built["inside"] -= 1

    def counting_load(*args: object, **kwargs: object) -> object:
        built["n"] += 0 if built["inside"] else 1
        return load_model(*args, **kwargs)

    Backbone._materialise = counting_materialise  # type: ignore[method-assign]
    st_source._load_model = counting_load  # type: ignore[assignment]
    if mode == "warm-eager":

        def eager(spec: str) -> Backbone:
            backbone = create_backbone(spec)
            _ = backbone.module  # as before lazy backbones: the network is there as soon as the backbone is
            return backbone

        ranking.create_backbone = eager  # type: ignore[assignment]

    data, specs, _ = CANDIDATES[modality]
    t0 = time.perf_counter()
    result = hs.rank(data, backbones=specs, labels_per_class=labels_per_class, progress=False, scores=scores)
    seconds = time.perf_counter() - t0
    scores = {r.spec: r.scores for r in result.results}
    load = {r.spec: r.seconds["load"] for r in result.results}
    parts = {r.spec: {k: round(v, 3) for k, v in r.seconds.items()} for r in result.results}
    out = {"rank_s": seconds, "import_s": imported, "built": built["n"], "scores": scores, "load_s": load}
    print(json.dumps({**out, "seconds": parts}))


def timed_run(modality: str, mode: str, labels_per_class: int, scores: str | None, env: dict[str, str]) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, "--modality", modality]
    cmd += ["--labels-per-class", str(labels_per_class)] + (["--scores", scores] if scores else [])
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{mode} run failed:\n{proc.stderr[-3000:]}")
    line = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1]
    return {"wall_s": wall, **json.loads(line)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modality", choices=["text", "image", "both"], default="text")
    parser.add_argument("--labels-per-class", type=int, default=None)
    parser.add_argument("--repeat", type=int, default=2, help="warm runs of each kind (the best is reported)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "warm_cache.json")
    parser.add_argument("--scores", help="comma-separated scores (default: all of rank's), e.g. logme")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    modalities = ["text", "image"] if args.modality == "both" else [args.modality]
    if args.child:
        (modality,) = modalities
        chosen = args.scores.split(",") if args.scores else None
        child(modality, args.child, args.labels_per_class or CANDIDATES[modality][2], chosen)
        return

    results = {}
    for modality in modalities:
        budget = args.labels_per_class or CANDIDATES[modality][2]
        with tempfile.TemporaryDirectory(prefix="headstart-warm-") as cache:
            env = {
                **os.environ,
                "HEADSTART_CACHE": cache,
                "HEADSTART_OFFLINE": "1",
                "HF_HUB_OFFLINE": "1",
                "TRANSFORMERS_VERBOSITY": "error",
                "TOKENIZERS_PARALLELISM": "false",
            }
            runs = {"cold": timed_run(modality, "cold", budget, args.scores, env)}
            for mode in ("warm-eager", "warm"):
                tries = [timed_run(modality, mode, budget, args.scores, env) for _ in range(max(1, args.repeat))]
                runs[mode] = min(tries, key=lambda r: r["wall_s"])
            same = runs["warm"]["scores"] == runs["cold"]["scores"] == runs["warm-eager"]["scores"]
        data, specs, _ = CANDIDATES[modality]
        results[modality] = {
            "data": data,
            "backbones": specs,
            "labels_per_class": budget,
            "scores": args.scores or "all",
            "runs": runs,
            "same": same,
        }
        cold = runs["cold"]["wall_s"]
        print(f"\n{modality}: rank {' and '.join(specs)} on {data}, {budget} labelled items per class, ", end="")
        print(f"scores: {args.scores or 'all'}")
        print(f"{'run':<11} {'wall s':>7} {'in rank s':>9} {'load s':>7} {'built':>5} {'vs cold':>8}")
        for mode, r in runs.items():
            load = sum(r["load_s"].values())
            print(
                f"{mode:<11} {r['wall_s']:7.2f} {r['rank_s']:9.2f} {load:7.2f} {r['built']:5d} "
                f"{r['wall_s'] / cold:7.2f}x"
            )
        print(f"scores identical across the three runs: {same}")
        for mode in ("warm-eager", "warm"):
            parts = runs[mode]["seconds"]
            total = {k: round(sum(p.get(k, 0.0) for p in parts.values()), 2) for k in next(iter(parts.values()))}
            print(f"  {mode}, seconds inside rank (both backbones): {total}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"cpus": os.cpu_count(), "load": os.getloadavg(), **results}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
