"""Quality on the shipped samples and two extra sets: is headstart's default never behind ten lines of
scikit-learn on the same features, and is `auto` never behind the better of the baseline and the probe?

    python benchmarks/quality.py [--sets bbc,tweets,titles,digits,solar,fashion,spoken] [--budgets 4,16,all]
                                 [--seeds 0,1,2] [--auto-budgets 4,16,all] [--finetune-budgets 4,16] [--max-items 3000]

For each set, labels-per-class budget and seed, on one seeded stratified split (25% test; `--max-items` caps the
pool first, stratified, for the big sets): the modality's simple baseline (TF-IDF / raw pixels / log-mel + logistic
regression), scikit-learn's default `LogisticRegression()` on the backbone's frozen features, headstart's probe
(the tuned linear head on the same features, as `fit` trains it: for audio with features of noisy copies of each
training clip), and `fit(strategy="auto")` (cheap candidates: baseline, linear and
MLP heads, features joined with the baseline's), and at --finetune-budgets the set's fine-tuning strategy with its
defaults (FINETUNE: the schedule sized to the data), each scored on the same test items. Mean ± std over seeds,
with wall time (features come from the cache, extracted once per set; fine-tuning has no cache). More fine-tuning
figures live in their own benchmarks (finetune_recipe.py, setfit.py, audio.py). Writes
benchmarks/results/quality.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "quality.json"
SETS = {
    "bbc": ("samples:bbc-news", "st:all-MiniLM-L6-v2"),
    "tweets": ("samples:tweet-sentiment", "st:all-MiniLM-L6-v2"),
    "titles": ("samples:bbc-titles", "st:all-MiniLM-L6-v2"),
    "digits": ("samples:digits", "headstart:efficientnet-lite0"),
    "solar": ("samples:solar-cells", "headstart:efficientnet-lite0"),
    "fashion": ("samples:fashion-mnist", "headstart:efficientnet-lite0"),
    "spoken": ("samples:spoken-digits", "headstart:speech-embedding"),
}

# the fine-tuning strategy of the `finetune` column, per set, with its defaults
FINETUNE = {
    "bbc": "setfit",
    "tweets": "setfit",
    "titles": "setfit",
    "digits": "finetune",
    "solar": "finetune",
    "fashion": "finetune",
    "spoken": "finetune",
}


def pool(source: str, max_items: int, seed: int = 0) -> Any:
    from headstart.data import load_data

    ds = load_data(source)
    if len(ds) <= max_items or ds.groups is not None:
        return ds
    from sklearn.model_selection import train_test_split

    keep, _ = train_test_split(np.arange(len(ds)), train_size=max_items, stratify=ds.labels, random_state=seed)
    return ds.subset(np.sort(keep))


def seeded_splits(
    ds: Any, x_all: np.ndarray, budgets: str, seeds: str
) -> Iterator[tuple[str, int, Any, Any, Any, Any]]:
    """(budget, seed, train, test, train rows, test rows) for every budget ("4", "16", "all") and seed: this
    benchmark's seeded 25% split, the rows of `x_all` (features of every item of `ds`) that are each part's."""
    from headstart.data import split

    index = {h: i for i, h in enumerate(ds.content_hashes())}
    for budget in budgets.split(","):
        for seed in [int(s) for s in seeds.split(",")]:
            per_class = None if budget == "all" else int(budget)
            train, test = split(ds, test_size=0.25, seed=seed, labels_per_class=per_class)
            tr = np.asarray([index[h] for h in train.content_hashes()])
            te = np.asarray([index[h] for h in test.content_hashes()])
            yield budget, seed, train, test, x_all[tr], x_all[te]


def run_set(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    import headstart as hs
    from headstart.backbones import create_backbone
    from headstart.evaluation.baselines import baseline_predict
    from headstart.features import extract_features
    from headstart.probe import fit_heads

    source, spec = SETS[name]
    ds = pool(source, args.max_items)
    bb = create_backbone(spec)
    t0 = time.perf_counter()
    x_all = extract_features(bb, ds, progress=True)
    print(f"{name}: {len(ds)} items, features {x_all.shape} in {time.perf_counter() - t0:.0f} s", flush=True)
    rows = []
    for budget, seed, train, test, xtr, xte in seeded_splits(ds, x_all, args.budgets, args.seeds):
        ytr, yte = np.asarray(train.labels), np.asarray(test.labels)
        row: dict[str, Any] = {
            "set": name,
            "budget": budget,
            "seed": seed,
            "n_train": len(train),
            "n_test": len(test),
        }

        t = time.perf_counter()
        row["baseline"] = float(np.mean(np.asarray(baseline_predict(train, test, train.tasks[0], seed=seed)) == yte))
        row["baseline_s"] = time.perf_counter() - t
        from sklearn.linear_model import LogisticRegression

        t = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row["sklearn_lr"] = float(LogisticRegression(max_iter=1000).fit(xtr, ytr).score(xte, yte))
        row["sklearn_lr_s"] = time.perf_counter() - t
        t = time.perf_counter()
        # fit_heads is the probe's own head fit: for audio it adds features of noisy copies of each clip
        head = fit_heads(bb, train, xtr, "linear", {"random_state": seed}, seed=seed)[train.tasks[0]]
        row["probe"] = float(head.score(xte, yte))
        row["probe_s"] = time.perf_counter() - t
        row["probe_chosen"] = {k: head.chosen_[k] for k in ("C", "scaling")}
        if budget in args.auto_budgets.split(","):
            t = time.perf_counter()
            model = hs.fit(train, test=test, backbone=spec, strategy="auto", seed=seed, refit=False,
                           baseline=False, progress=False)  # fmt: skip
            row["auto"] = float(model.report["tasks"][train.tasks[0]]["accuracy"])
            row["auto_s"] = time.perf_counter() - t
            row["auto_chosen"] = model.report["chosen"]
        if budget in args.finetune_budgets.split(","):
            t = time.perf_counter()
            model = hs.fit(train, test=test, backbone=spec, strategy=FINETUNE[name], seed=seed, refit=False,
                           baseline=False, progress=False)  # fmt: skip
            row["finetune"] = float(model.report["tasks"][train.tasks[0]]["accuracy"])
            row["finetune_s"] = time.perf_counter() - t
            row["finetune_strategy"] = FINETUNE[name]
        row["load"] = os.getloadavg()[0]
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        rows.append(row)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    methods = ["baseline", "sklearn_lr", "probe", "finetune", "auto"]
    gaps = " | probe − sklearn | finetune − probe | auto − max(baseline, probe) |"
    lines = ["| set | labels/class | " + " | ".join(methods) + gaps]
    lines.append("|---|---|" + "---|" * (len(methods) + 3))
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["set"], r["budget"]), []).append(r)
    for (name, budget), rs in groups.items():
        cells = []
        for m in methods:
            vals = [r[m] for r in rs if m in r]
            secs = [r[f"{m}_s"] for r in rs if f"{m}_s" in r]
            took = f" ({np.mean(secs):.1f} s)" if secs else ""  # replayed rows (auto_choice.py) have no time
            cells.append(f"{np.mean(vals):.3f} ± {np.std(vals):.3f}{took}" if vals else "-")
        gap = np.mean([r["probe"] - r["sklearn_lr"] for r in rs])
        auto = [r["auto"] - max(r["baseline"], r["probe"]) for r in rs if "auto" in r]
        auto_gap = f"{np.mean(auto):+.3f}" if auto else "-"
        tuned = [r["finetune"] - r["probe"] for r in rs if "finetune" in r]
        tuned_gap = f"{np.mean(tuned):+.3f}" if tuned else "-"
        lines.append(f"| {name} | {budget} | " + " | ".join(cells) + f" | {gap:+.3f} | {tuned_gap} | {auto_gap} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--budgets", default="4,16,all")
    parser.add_argument("--auto-budgets", default="4,16,all")
    parser.add_argument("--finetune-budgets", default="4,16", help="budgets that also fine-tune (costly)")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-items", type=int, default=3000)
    parser.add_argument("--append", action="store_true", help="add to the rows already in the results file")
    parser.add_argument("--out", type=Path, default=RESULTS, help="the results file (JSON)")
    args = parser.parse_args()
    rows = json.loads(args.out.read_text())["rows"] if args.append and args.out.exists() else []
    for name in args.sets.split(","):
        redone = set(args.budgets.split(","))
        rows = [r for r in rows if not (r["set"] == name and r["budget"] in redone)] + run_set(name, args)
        args.out.parent.mkdir(exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows, "table": table(rows)}, indent=2))
    print(table(rows))


if __name__ == "__main__":
    main()
