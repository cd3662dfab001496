"""A sentence encoder's features beside TF-IDF rows, against each alone, on the same splits: what `auto`'s joined
text candidate is worth when it is chosen, and where.

    python benchmarks/joined_text.py [--sets bbc,titles,tweets] [--budgets 4,16,all] [--seeds 0,1,2]

For each set, labels-per-class budget and seed, on one seeded stratified split (25% test; the quality benchmark's
pools and splits): the TF-IDF baseline as headstart runs it as a model (`tfidf_predict`: TF-IDF fitted on the
training texts, C=10), the probe (the tuned linear head on MiniLM's cached features), and the two joined
(`tfidf_predict(..., beside=...)` with JOINED_HEAD: each part weighed by its rows' mean length, C tuned on the
training texts), each scored on the same test texts. Mean ± std over seeds, with wall time. Writes
benchmarks/results/joined_text.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "joined_text.json"
SETS = {"bbc": "samples:bbc-news", "titles": "samples:bbc-titles", "tweets": "samples:tweet-sentiment"}
BACKBONE = "st:all-MiniLM-L6-v2"


def run_set(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from quality import pool, seeded_splits

    from headstart.backbones import create_backbone
    from headstart.features import extract_features
    from headstart.probe import JOINED_HEAD, fit_heads, tfidf_predict

    ds = pool(SETS[name], 3000)
    bb = create_backbone(BACKBONE)
    x_all = extract_features(bb, ds, progress=True)
    rows = []
    for budget, seed, train, test, xtr, xte in seeded_splits(ds, x_all, args.budgets, args.seeds):
        task, truth = train.tasks[0], np.asarray(test.labels)
        row: dict[str, Any] = {"set": name, "budget": budget, "seed": seed, "n_train": len(train)}
        t = time.perf_counter()
        row["tfidf"] = float(np.mean(np.asarray(tfidf_predict(train, test, seed=seed)[task]) == truth))
        row["tfidf_s"] = time.perf_counter() - t
        t = time.perf_counter()
        head = fit_heads(bb, train, xtr, "linear", {"random_state": seed}, seed=seed)[task]
        row["probe"] = float(head.score(xte, truth))
        row["probe_s"] = time.perf_counter() - t
        t = time.perf_counter()
        pred = tfidf_predict(train, test, seed=seed, beside=(xtr, xte), head_params=dict(JOINED_HEAD))[task]
        row["joined"] = float(np.mean(np.asarray(pred) == truth))
        row["joined_s"] = time.perf_counter() - t
        print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    out = [
        "| set | labels/class | TF-IDF | probe (MiniLM) | joined | joined − max(TF-IDF, probe) |",
        "|---|---|---|---|---|---|",
    ]
    for key in dict.fromkeys((r["set"], r["budget"]) for r in rows):
        group = [r for r in rows if (r["set"], r["budget"]) == key]
        cell = {m: np.array([r[m] for r in group]) for m in ("tfidf", "probe", "joined")}
        secs = {m: np.mean([r[f"{m}_s"] for r in group]) for m in cell}
        gain = cell["joined"] - np.maximum(cell["tfidf"], cell["probe"])
        out.append(
            f"| {key[0]} | {key[1]} | "
            + " | ".join(f"{cell[m].mean():.3f} ± {cell[m].std():.3f} ({secs[m]:.1f} s)" for m in cell)
            + f" | {gain.mean():+.3f} ± {gain.std():.3f} |"
        )
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--budgets", default="4,16,all")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    rows = [r for name in args.sets.split(",") for r in run_set(name, args)]
    command = " ".join(f"--{k} {v}" for k, v in vars(args).items() if k != "out")
    meta = {"command": f"python benchmarks/joined_text.py {command}", "backbone": BACKBONE,
            "test": "the quality benchmark's seeded 25% split per seed"}  # fmt: skip
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows, "table": table(rows)}, indent=2))
    print(table(rows))


if __name__ == "__main__":
    main()
