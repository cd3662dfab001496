"""Backbone ranking and data diagnostics on real models: do the scores pick the backbone that transfers best, and do
the diagnostics find problems planted in real data?

    python benchmarks/rank.py [--quick] [--skip-text] [--skip-images] [--skip-diagnose] [--out PATH]

1. `rank` on samples:bbc-news (st:all-MiniLM-L6-v2, st:all-MiniLM-L6-v2?init=random) and on samples:digits
   (headstart:efficientnet-lite0, ...?init=random, headstart:tiny-cnn, timm:resnet18?init=random&size=64), at a few
   label budgets. Beside each score: the held-out accuracy of the linear head `headstart fit` would fit on the same
   scored items, tested on the default split's test part (never scored). Kendall tau between each score and that
   accuracy across backbones (LEEP and NCE exist only for backbones with a source classifier).
2. `rank`'s own time per backbone once features are cached: wall and CPU seconds of a one-backbone `rank` without
   the probe (backbone loading shown apart), on every labelled training item. Goal: scores well under a second.
3. `diagnose` on digits (EfficientNet-Lite0) with planted problems: 5% flipped labels, exact copies (some land on
   both sides of the default split), near-copies (pixel noise of +-2 grey levels), pure-noise images, and as target
   the digits rotated by 90 degrees; as a control, the shift test between two i.i.d. halves of digits.
4. `diagnose` on BBC News as shipped (all-MiniLM-L6-v2): the duplicates and train/test leakage of the real corpus.

Uses the ordinary feature cache ($HEADSTART_CACHE): the first run extracts (BBC News with MiniLM: minutes), later
runs read features back. The machine may be shared: the load average is recorded beside each section.
Writes benchmarks/results/rank.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HEADSTART_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import numpy as np  # noqa: E402
from scipy.stats import kendalltau  # noqa: E402

from headstart.backbones import create_backbone  # noqa: E402
from headstart.data import Dataset, from_arrays, load_data, split  # noqa: E402
from headstart.features import extract_features  # noqa: E402
from headstart.features.source import extract_source_logits  # noqa: E402
from headstart.heads import make_head  # noqa: E402
from headstart.select.diagnose import default_split_test_mask, diagnose  # noqa: E402
from headstart.select.ranking import DEFAULT_SCORES, REFERENCE, rank  # noqa: E402
from headstart.select.shift import classifier_test, mmd_test, verdict  # noqa: E402

ROOT = Path(__file__).resolve().parent
TEXT = ("st:all-MiniLM-L6-v2", "st:all-MiniLM-L6-v2?init=random")
IMAGE = (
    "headstart:efficientnet-lite0",
    "headstart:efficientnet-lite0?init=random",
    "headstart:tiny-cnn",
    "timm:resnet18?init=random&size=64",
)
CHEAP = tuple(s for s in DEFAULT_SCORES if s != REFERENCE)
SEED = 0


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def warm(ds: Dataset, specs: tuple[str, ...]) -> dict[str, float]:
    """Extract (or read back) every item's features and source logits, so that what follows is timed cached."""
    seconds = {}
    for spec in specs:
        t = time.perf_counter()
        bb = create_backbone(spec)
        extract_features(bb, ds, progress=True)
        extract_source_logits(bb, ds, progress=True)
        seconds[spec] = round(time.perf_counter() - t, 1)
        log(f"features of {ds.source} with {spec}: {seconds[spec]} s")
    return seconds


# ---------------------------------------------------------------- 1. scores vs held-out accuracy


def held_out_accuracy(ds: Dataset, spec: str, budget: int | None) -> float:
    train, test = split(ds, seed=SEED, labels_per_class=budget)
    bb = create_backbone(spec)
    x_train = extract_features(bb, train, progress=False)
    x_test = extract_features(bb, test, progress=False)
    head = make_head("linear", random_state=SEED).fit(x_train, train.labels)
    return float(np.mean(np.asarray(head.predict(x_test)) == np.asarray(test.labels)))


def finetuned_accuracy(ds: Dataset, spec: str, budget: int | None, epochs: int) -> float:
    """Test accuracy after fine-tuning `spec` end to end (strategy finetune) on the same labelled items."""
    import headstart as hs

    options = {"hflip": False} if ds.modality == "image" else {}
    model = hs.fit(ds, backbone=spec, labels_per_class=budget, seed=SEED, strategy="finetune", epochs=epochs,
                   val_size=0.0, baseline=False, progress=False, **options)  # fmt: skip
    return float(model.metrics["label"]["accuracy"])


def self_pretrained(kind: str, ds: Dataset, work: Path) -> tuple[str, ...]:
    """Backbones pretrained by `headstart pretrain` on the training split's items alone (labels never read)."""
    import headstart as hs

    pool, _ = split(ds, seed=SEED)
    pool.targets = {}
    if kind == "image":
        runs = {
            "simclr": dict(method="contrastive", epochs=20),
            "dcgan": dict(method="gan", epochs=15),
            "autoencoder": dict(method="autoencoder", epochs=50),
        }
    else:  # a small BERT from scratch, tokenizer trained on the articles
        small = {"layers": 2, "hidden": 128, "heads": 2, "max_windows": 4000}
        runs = {"bert-scratch": dict(method="masked", epochs=2, lr=5e-4, options=small)}
    specs = []
    for name, settings in runs.items():
        t = time.perf_counter()
        result = hs.pretrain(pool, out=work / f"{kind}-{name}", seed=SEED, progress=False, **settings)
        log(f"pretrained {name} on {len(pool)} {kind} items in {time.perf_counter() - t:.0f} s")
        specs.append(result.spec)
    return tuple(specs)


def tau(xs: list[float | None], ys: list[float]) -> float | None:
    pairs = [(x, y) for x, y in zip(xs, ys) if x is not None]
    if len(pairs) < 2:
        return None
    t = kendalltau(*zip(*pairs)).statistic
    return None if np.isnan(t) else round(float(t), 3)


def correlation(
    ds: Dataset, specs: tuple[str, ...], budgets: list[int | None], finetune_budget: int | None, epochs: int
) -> list[dict]:
    rows = []
    for budget in budgets:
        t = time.perf_counter()
        ranking = rank(ds, list(specs), labels_per_class=budget, seed=SEED, progress=False)
        wall = time.perf_counter() - t
        by_spec = {r.spec: r for r in ranking.results}
        accuracy = {spec: held_out_accuracy(ds, spec, budget) for spec in specs}
        tuned: dict[str, float] = {}
        if budget == finetune_budget and epochs:
            for spec in specs:
                tuned[spec] = finetuned_accuracy(ds, spec, budget, epochs)
                log(f"fine-tuned {spec} @ {budget}/class: {tuned[spec]:.4f}")
        names = list(ranking.results[0].scores)
        row = {
            "data": ds.source,
            "labels_per_class": budget,
            "n_scored": ranking.data["n_scored"],
            "rank_wall_s": round(wall, 1),
            "recommended": ranking.recommended,
            "best_held_out": max(accuracy, key=accuracy.get),
            "backbones": [
                {
                    "spec": spec,
                    "held_out_accuracy": round(accuracy[spec], 4),
                    **({"finetuned_accuracy": round(tuned[spec], 4)} if tuned else {}),
                    **{n: _round(by_spec[spec].scores[n]) for n in names},
                }
                for spec in specs
            ],
            "kendall_tau_vs_held_out": {
                n: tau([by_spec[s].scores[n] for s in specs], [accuracy[s] for s in specs]) for n in names
            },
            **(
                {
                    "finetune_epochs": epochs,
                    "kendall_tau_vs_finetuned": {
                        n: tau([by_spec[s].scores[n] for s in specs], [tuned[s] for s in specs]) for n in names
                    },
                }
                if tuned
                else {}
            ),
            "loadavg": loadavg(),
        }
        rows.append(row)
        log(f"{ds.source} @ {budget or 'all'}/class: recommended {row['recommended']}, best {row['best_held_out']}")
    return rows


def _round(v: float | None) -> float | None:
    return None if v is None else round(float(v), 4)


# ---------------------------------------------------------------- 2. rank's time with features cached


def timing(ds: Dataset, specs: tuple[str, ...], reps: int) -> list[dict]:
    rows = []
    for spec in specs:
        best = None
        for _ in range(reps):
            t, c = time.perf_counter(), time.process_time()
            (r,) = rank(ds, [spec], scores=CHEAP, seed=SEED, progress=False).results
            wall, cpu = time.perf_counter() - t, time.process_time() - c
            run = {
                "spec": spec,
                "n_items": len(split(ds, seed=SEED)[0]),
                "embed_dim": r.embed_dim,
                "rank_wall_s": round(wall, 3),
                "rank_cpu_s": round(cpu, 3),
                "load_s": round(r.seconds["load"], 3),
                "read_features_s": round(r.seconds["extract"] + r.seconds.get("extract_source", 0.0), 3),
                "scores_s": round(r.seconds["score"], 3),
                "per_score_s": {n: round(r.seconds[f"score_{n}"], 3) for n in CHEAP},
                "loadavg": loadavg(),
            }
            if best is None or run["rank_wall_s"] < best["rank_wall_s"]:
                best = run
        rows.append(best)
        log(f"rank time {spec}: {best['rank_wall_s']} s wall, scores {best['scores_s']} s")
    return rows


# ---------------------------------------------------------------- 3. diagnose with planted problems


def planted_digits(seed: int = SEED) -> tuple[Dataset, dict]:
    digits = load_data("samples:digits")
    rng = np.random.default_rng(seed)
    items = [np.asarray(x) for x in digits.items]
    labels = list(digits.labels)
    n = len(items)
    flipped = rng.choice(n, round(0.05 * n), replace=False)
    for i in flipped:
        labels[i] = str((int(labels[i]) + rng.integers(1, 10)) % 10)
    copied = rng.choice(n, 30, replace=False)
    near = rng.choice(np.setdiff1d(np.arange(n), copied), 15, replace=False)
    noisy = [np.clip(items[i].astype(int) + rng.integers(-2, 3, items[i].shape), 0, 255).astype(np.uint8) for i in near]
    junk = [rng.integers(0, 256, (8, 8), dtype=np.uint8) for _ in range(5)]
    all_items = items + [items[i].copy() for i in copied] + noisy + junk
    all_labels = labels + [labels[i] for i in copied] + [labels[i] for i in near] + [str(k) for k in range(5)]
    plan = {
        "flipped": flipped.tolist(),
        "copies": [(int(i), n + k) for k, i in enumerate(copied)],
        "near": [(int(i), n + len(copied) + k) for k, i in enumerate(near)],
        "junk": list(range(n + len(copied) + len(near), len(all_items))),
    }
    return from_arrays(all_items, all_labels), plan


def diagnose_digits(permutations: int) -> dict:
    data, plan = planted_digits()
    digits = load_data("samples:digits")
    rotated = from_arrays([np.rot90(digits.items[i]).copy() for i in range(0, len(digits), 3)])
    t = time.perf_counter()
    d = diagnose(
        data,
        backbone="headstart:efficientnet-lite0",
        target=rotated,
        out=Path(tempfile.mkdtemp(prefix="headstart-diagnose-")),
        permutations=permutations,
        progress=True,
    )
    wall = time.perf_counter() - t
    index = {w: int(w.split("#")[1]) for w in data.where}
    suspects = {index[r["where"]] for r in d.label_issues}
    flipped = set(plan["flipped"])
    mask = default_split_test_mask(data, test_size=0.25, seed=SEED, task=None)
    straddling = [(a, b) for a, b in plan["copies"] if mask[a] != mask[b]]
    leaked = {(index[p["train"]], index[p["test"]]) for p in d.leakage if p["exact"]}
    found_groups = [{index[w] for w in g["where"]} for g in d.exact_duplicates]
    near_pairs = {frozenset((index[p["a"]], index[p["b"]])) for p in d.near_duplicates}
    outliers = {index[o["where"]] for o in d.outliers}

    features = extract_features(create_backbone("headstart:efficientnet-lite0"), digits, progress=False)
    even, odd = features[0::2], features[1::2]
    c, m = classifier_test(even, odd, permutations=permutations), mmd_test(even, odd, permutations=permutations)
    control_level, control_sentence = verdict(c, m)
    return {
        "items": len(data),
        "wall_s": round(wall, 1),
        "seconds": {k: round(v, 1) for k, v in d.seconds.items()},
        "flipped_labels": {
            "planted": len(flipped),
            "suspects": len(suspects),
            "found": len(suspects & flipped),
            "recall": round(len(suspects & flipped) / len(flipped), 3),
            "precision": round(len(suspects & flipped) / max(len(suspects), 1), 3),
        },
        "exact_copies": {
            "planted": len(plan["copies"]),
            "found": sum(any({a, b} <= g for g in found_groups) for a, b in plan["copies"]),
            "groups_reported": len(d.exact_duplicates),
        },
        "leakage_exact": {
            "planted_across_split": len(straddling),
            "found": sum((a, b) in leaked or (b, a) in leaked for a, b in straddling),
            "pairs_reported": len(d.leakage),
        },
        "near_copies": {
            "planted": len(plan["near"]),
            "found": sum(frozenset(p) in near_pairs for p in plan["near"]),
            "pairs_reported": len(d.near_duplicates),
        },
        "noise_images_as_outliers": {
            "planted": len(plan["junk"]),
            "found": len(outliers & set(plan["junk"])),
            "outliers_reported": len(outliers),
        },
        "shift_rotated_target": {k: d.shift[k] for k in ("level", "classifier", "mmd", "verdict")},
        "shift_iid_halves": {
            "level": control_level,
            "auc": c.statistic,
            "auc_p": c.p_value,
            "mmd_p": m.p_value,
            "verdict": control_sentence,
        },
        "loadavg": loadavg(),
    }


def diagnose_bbc() -> dict:
    """The real corpus, nothing planted: what does diagnose find in BBC News?"""
    t = time.perf_counter()
    d = diagnose(load_data("samples:bbc-news"), backbone="st:all-MiniLM-L6-v2", progress=False)
    return {
        "items": d.data["n_items"],
        "wall_s": round(time.perf_counter() - t, 1),
        "exact_duplicate_groups": len(d.exact_duplicates),
        "extra_copies": sum(len(g["where"]) - 1 for g in d.exact_duplicates),
        "conflicting_label_groups": sum(g["conflicting"] for g in d.exact_duplicates),
        "near_duplicate_pairs": len(d.near_duplicates),
        "leaked_test_items": len({p["test"] for p in d.leakage}),
        "leaked_pairs_exact": sum(p["exact"] for p in d.leakage),
        "leaked_pairs_near": sum(not p["exact"] for p in d.leakage),
        "suspect_labels": len(d.label_issues),
        "outliers": len(d.outliers),
        "near_duplicate_examples": d.near_duplicates[-3:],
    }


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one label budget, fewer permutations, no resnet18")
    parser.add_argument("--skip-text", action="store_true")
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--skip-diagnose", action="store_true")
    parser.add_argument("--self-pretrained", action="store_true", help="add backbones from `headstart pretrain`")
    parser.add_argument("--finetune-budget", type=int, default=20, help="labels/class of the fine-tuned column")
    parser.add_argument("--finetune-epochs", type=int, default=3, help="0: no fine-tuned column")
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "headstart-bench-rank")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "rank.json")
    args = parser.parse_args()
    budgets: list[int | None] = [5] if args.quick else [5, 20, None]
    image_specs = IMAGE[:3] if args.quick else IMAGE
    result: dict = {"cache": os.environ.get("HEADSTART_CACHE", "~/.cache/headstart"), "loadavg_start": loadavg()}

    jobs = []
    if not args.skip_text:
        jobs.append(("text", load_data("samples:bbc-news"), TEXT))
    if not args.skip_images:
        jobs.append(("image", load_data("samples:digits"), image_specs))
    for kind, ds, specs in jobs:
        if args.self_pretrained:
            specs = specs + self_pretrained(kind, ds, args.work)
        result[f"{kind}_extract_s"] = warm(ds, specs)
        result[f"{kind}_scores_vs_accuracy"] = correlation(
            ds, specs, budgets, args.finetune_budget, args.finetune_epochs
        )
        result[f"{kind}_rank_time_cached"] = timing(ds, specs, reps=1 if args.quick else 3)
    if not args.skip_diagnose:
        result["diagnose_digits"] = diagnose_digits(permutations=200 if args.quick else 500)
        if not args.skip_text:
            result["diagnose_bbc_news"] = diagnose_bbc()
    result["loadavg_end"] = loadavg()

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2, default=str))
    report(result)
    log(f"wrote {args.out}")


def report(result: dict) -> None:
    for kind in ("text", "image"):
        for row in result.get(f"{kind}_scores_vs_accuracy", []):
            budget = row["labels_per_class"] or "all"
            print(f"\n{row['data']}, {budget} labels/class ({row['n_scored']} scored items)")
            names = [k for k in row["backbones"][0] if k not in ("spec", "held_out_accuracy", "finetuned_accuracy")]
            tuned = "finetuned_accuracy" in row["backbones"][0]
            head = f"  {'backbone':44} {'held-out':>9} " + (f"{'finetuned':>9} " if tuned else "")
            print(head + " ".join(f"{n[:9]:>9}" for n in names))
            for b in row["backbones"]:
                cells = " ".join(f"{'-' if b[n] is None else format(b[n], '.4f'):>9}" for n in names)
                ft = f"{b['finetuned_accuracy']:>9.4f} " if tuned else ""
                print(f"  {b['spec'][-44:]:44} {b['held_out_accuracy']:>9.4f} {ft}{cells}")
            pad = f"{'':>9} " + (f"{'':>9} " if tuned else "")
            taus = row["kendall_tau_vs_held_out"]
            print(f"  {'Kendall tau vs held-out':44} {pad}" + " ".join(f"{_fmt(taus[n]):>9}" for n in names))
            if tuned:
                taus = row["kendall_tau_vs_finetuned"]
                print(f"  {'Kendall tau vs fine-tuned':44} {pad}" + " ".join(f"{_fmt(taus[n]):>9}" for n in names))
            print(f"  recommended {row['recommended']}; best held-out {row['best_held_out']}")
        for t in result.get(f"{kind}_rank_time_cached", []):
            print(
                f"  rank time, cached, {t['spec']} ({t['n_items']} items, {t['embed_dim']}-d): "
                f"scores {t['scores_s']} s, reading features {t['read_features_s']} s, loading {t['load_s']} s; "
                f"whole call {t['rank_wall_s']} s wall / {t['rank_cpu_s']} s CPU  {t['per_score_s']}"
            )
    d = result.get("diagnose_digits")
    if d:
        print(f"\ndiagnose, digits + planted problems ({d['items']} items, EfficientNet-Lite0), {d['wall_s']} s")
        for key in ("flipped_labels", "exact_copies", "leakage_exact", "near_copies", "noise_images_as_outliers"):
            print(f"  {key}: {d[key]}")
        s = d["shift_rotated_target"]
        auc, p_auc, p_mmd = s["classifier"]["statistic"], s["classifier"]["p_value"], s["mmd"]["p_value"]
        print(f"  rotated target: {s['level']} (AUC {auc:.3f}, p {p_auc:.3g}; MMD p {p_mmd:.3g})")
        c = d["shift_iid_halves"]
        print(f"  i.i.d. halves: {c['level']} (AUC {c['auc']:.3f}, p {c['auc_p']:.3g}; MMD p {c['mmd_p']:.3g})")
    b = result.get("diagnose_bbc_news")
    if b:
        print(f"\ndiagnose, samples:bbc-news as shipped ({b['items']} items, all-MiniLM-L6-v2), {b['wall_s']} s")
        for key, value in b.items():
            if key not in ("items", "wall_s", "near_duplicate_examples"):
                print(f"  {key}: {value}")


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:+.3f}"


if __name__ == "__main__":
    main()
