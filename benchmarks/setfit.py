"""Few-shot text classification: SetFit (contrastive tuning of the sentence encoder + logistic regression) against a
frozen-encoder probe and TF-IDF, on the same splits.

    python benchmarks/setfit.py [--datasets bbc-news] [--budgets 8,16] [--seeds 0,1,2] [--test-items 400]
                                [--losses cosine,supcon] [--pairs-per-item 4] [--max-length 128]

For each data set and seed: `headstart.data.split(ds, test_size=0.25, seed=s, labels_per_class=k)` gives the
labelled items; every method of that seed is scored on the same fixed, seeded subset of `--test-items` items of the
test part (the test part does not depend on k). Methods:

- tfidf: headstart's text baseline (TF-IDF unigrams + bigrams, logistic regression C=10);
- frozen: the backbone's embeddings (no tuning) + scikit-learn LogisticRegression (defaults, as SetFit's head);
- setfit-<loss>: `contrastive_tune` on the labelled items, then the same LogisticRegression on tuned embeddings.

Wall time per row: everything the method needs from raw texts to test predictions (tuning, embedding the labelled
and test items, fitting the head); model loading is left out. Rows are written to benchmarks/results/setfit.json as
they finish, so an interrupted run keeps what it measured; a table of mean +- std over seeds is printed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "setfit.json"
BACKBONE = "st:all-MiniLM-L6-v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="bbc-news", help="comma-separated samples: names (text)")
    parser.add_argument("--budgets", default="8,16", help="labels per class")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--test-items", type=int, default=400, help="fixed seeded test subset per seed (0: all)")
    parser.add_argument("--backbone", default=BACKBONE)
    parser.add_argument("--max-length", type=int, default=128, help="tokens per text, for tuning and features")
    parser.add_argument("--losses", default="cosine", help="comma-separated: cosine, supcon")
    parser.add_argument("--pairs-per-item", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16, help="pairs per step")
    parser.add_argument("--lr", type=float, default=2e-5)
    parser.add_argument("--tag", default="", help="suffix for the SetFit method name (e.g. -ppi20 for other settings)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--append", action="store_true", help="keep the rows in --out, skip those done")
    args = parser.parse_args()

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)  # on a crowded CPU one thread can be several times faster than two

    import headstart as hs
    from headstart.backbones import create_backbone
    from headstart.data import split

    spec = f"{args.backbone}?max_length={args.max_length}"
    backbone = create_backbone(spec)
    initial = {k: v.clone() for k, v in backbone.module.state_dict().items()}
    initial_id = backbone.weights_id
    meta = {
        "command": "python benchmarks/setfit.py " + " ".join(_argv()),
        "backbone": spec,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}",
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "test": "each seed's rows share one seeded subset of the 25% test split",
    }
    rows: list[dict[str, Any]] = json.loads(args.out.read_text())["rows"] if args.append and args.out.exists() else []
    if args.append and args.out.exists():
        meta["command"] = json.loads(args.out.read_text())["meta"]["command"] + " ; then " + meta["command"]

    def done(base: dict[str, Any], method: str) -> bool:
        keys = ("dataset", "labels_per_class", "seed")
        return any(r["method"] == method and all(r[k] == base[k] for k in keys) for r in rows)

    for name in args.datasets.split(","):
        ds = hs.load_dataset(f"samples:{name}")
        for seed in [int(s) for s in args.seeds.split(",")]:
            frozen_test: tuple[np.ndarray, float] | None = None
            for k in [int(b) for b in args.budgets.split(",")]:
                train, test = split(ds, test_size=0.25, seed=seed, labels_per_class=k)
                test = _test_subset(test, args.test_items, seed)
                base = {"dataset": name, "labels_per_class": k, "seed": seed, "train": len(train), "test": len(test)}
                base["threads"] = torch.get_num_threads()

                if not done(base, "tfidf"):
                    from headstart.evaluation.baselines import baseline_predict

                    t0 = time.perf_counter()
                    pred = baseline_predict(train, test, train.tasks[0], seed=seed)
                    rows.append({**base, "method": "tfidf", **_score(test, pred, time.perf_counter() - t0)})
                    _save(args.out, meta, rows)

                if not done(base, "frozen"):
                    _reset(backbone, initial, initial_id)
                    if frozen_test is None:  # the test part is the same for every k of this seed: embed it once
                        t0 = time.perf_counter()
                        frozen_test = (_embed(backbone, test.items), time.perf_counter() - t0)
                    t0 = time.perf_counter()
                    pred = _probe(_embed(backbone, train.items), train.labels, frozen_test[0], seed)
                    seconds = time.perf_counter() - t0 + frozen_test[1]
                    rows.append({**base, "method": "frozen", **_score(test, pred, seconds)})
                    _save(args.out, meta, rows)

                for loss in args.losses.split(","):
                    method = f"setfit-{loss}{args.tag}"
                    if done(base, method):
                        continue
                    from headstart.finetune.contrastive_text import contrastive_tune

                    _reset(backbone, initial, initial_id)
                    t0 = time.perf_counter()
                    history = contrastive_tune(
                        backbone,
                        train,
                        seed=seed,
                        epochs=args.epochs,
                        pairs_per_item=args.pairs_per_item,
                        batch_size=args.batch_size,
                        lr=args.lr,
                        loss=loss,
                        progress=True,
                    )
                    tuned = time.perf_counter() - t0
                    pred = _probe(_embed(backbone, train.items), train.labels, _embed(backbone, test.items), seed)
                    row = {**base, "method": method, **_score(test, pred, time.perf_counter() - t0)}
                    row |= {"tune_seconds": round(tuned, 1), "pairs": history["pairs"], "steps": history["steps"]}
                    row |= {"pairs_per_item": args.pairs_per_item, "lr": args.lr, "epochs": args.epochs}
                    row["tune_loss"] = [round(v, 4) for v in history["loss"]]
                    rows.append(row)
                    _save(args.out, meta, rows)
                    print(json.dumps(row), flush=True)
    _save(args.out, meta, rows)
    print(_table(rows))


def _argv() -> list[str]:
    import sys

    return sys.argv[1:]


def _test_subset(test: Any, n: int, seed: int) -> Any:
    if not n or n >= len(test):
        return test
    rng = np.random.default_rng(1000 + seed)
    return test.subset(np.sort(rng.choice(len(test), size=n, replace=False)))


def _reset(backbone: Any, initial: dict[str, Any], weights_id: str) -> None:
    backbone.module.load_state_dict(initial)
    backbone.weights_id = weights_id


def _embed(backbone: Any, texts: list[str]) -> np.ndarray:
    from headstart.features.extract import extract_features

    return extract_features(backbone, texts, batch_size=32, num_workers=0, cache=False, progress=False)


def _probe(x_train: np.ndarray, y_train: list[str], x_test: np.ndarray, seed: int) -> list[str]:
    from sklearn.linear_model import LogisticRegression

    head = LogisticRegression(max_iter=2000, random_state=seed)
    head.fit(x_train, y_train)
    return [str(v) for v in head.predict(x_test)]


def _score(test: Any, pred: list[str], seconds: float) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    y = test.labels
    return {
        "accuracy": round(float(accuracy_score(y, pred)), 4),
        "macro_f1": round(float(f1_score(y, pred, average="macro")), 4),
        "seconds": round(seconds, 1),
    }


def _save(out: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = _summary(rows)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "summary": summary, "rows": rows}, indent=1) + "\n")
    tmp.replace(out)


def _summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["labels_per_class"], r["method"]), []).append(r)
    out = []
    for (name, k, method), rs in groups.items():
        acc = np.array([r["accuracy"] for r in rs])
        secs = np.array([r["seconds"] for r in rs])
        out.append(
            {
                "dataset": name,
                "labels_per_class": k,
                "method": method,
                "seeds": len(rs),
                "accuracy_mean": round(float(acc.mean()), 4),
                "accuracy_std": round(float(acc.std(ddof=1)) if len(rs) > 1 else 0.0, 4),
                "seconds_mean": round(float(secs.mean()), 1),
            }
        )
        if method != "frozen":  # paired by seed: the same split and test subset
            frozen = {r["seed"]: r["accuracy"] for r in groups.get((name, k, "frozen"), [])}
            gain = np.array([r["accuracy"] - frozen[r["seed"]] for r in rs if r["seed"] in frozen])
            if len(gain):
                out[-1]["gain_vs_frozen_mean"] = round(float(gain.mean()), 4)
                out[-1]["gain_vs_frozen_std"] = round(float(gain.std(ddof=1)) if len(gain) > 1 else 0.0, 4)
    return out


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'data':<16} {'k':>3} {'method':<20} {'seeds':>5} {'accuracy':>15} {'vs frozen':>16} {'wall s':>8}"]
    for s in _summary(rows):
        acc = f"{s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f}"
        gain = f"{s['gain_vs_frozen_mean']:+.3f} ± {s['gain_vs_frozen_std']:.3f}" if "gain_vs_frozen_mean" in s else ""
        lines.append(
            f"{s['dataset']:<16} {s['labels_per_class']:>3} {s['method']:<20} {s['seeds']:>5} {acc:>15} {gain:>16} "
            f"{s['seconds_mean']:>8.1f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
