"""Domain-adaptive pretraining on BBC News: continued masked-LM pretraining of all-MiniLM-L6-v2 on the
unlabelled articles, then probe and fine-tune with few labels, against the same backbone without it.

    python benchmarks/masked_text.py [--epochs 1] [--max-windows 3000] [--budgets 4,16] [--seeds 0]

The pretraining pool is every article outside the test split (labels never read); the test split (25%, seeded)
is the same for every row. Each row: budget (labels per class), backbone (base / +MLM), strategy (probe /
finetune), accuracy, macro-F1, wall time; TF-IDF + logistic regression on the same labelled items as the simple
baseline. Prints JSON lines and writes benchmarks/results/masked_text.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "masked_text.json"
BASE = "st:all-MiniLM-L6-v2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=1, help="masked-LM epochs")
    parser.add_argument("--max-windows", type=int, default=3000, help="128-token windows per epoch (0: all)")
    parser.add_argument("--mlm-lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--budgets", default="4,16")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--finetune-epochs", type=int, default=5)
    parser.add_argument("--work", type=Path, default=Path("/tmp/headstart-bench-masked"))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    import headstart as hs
    from headstart.data import split
    from headstart.evaluation.baselines import baseline_predict

    ds = hs.load_dataset("samples:bbc-news")
    rows: list[dict[str, Any]] = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        pool, _ = split(ds, test_size=0.25, seed=seed)  # the test split never reaches pretraining
        pool.targets = {}  # and the pool's labels are never read
        t0 = time.perf_counter()
        result = hs.pretrain(
            pool,
            method="masked",
            backbone=f"{BASE}?max_length={args.max_length}",
            out=args.work / f"mlm-seed{seed}",
            epochs=args.epochs,
            lr=args.mlm_lr,
            seed=seed,
            options={"max_windows": args.max_windows, "max_length": args.max_length},
        )
        mlm_seconds = time.perf_counter() - t0
        history = result.history
        pre = {"seed": seed, "stage": "masked-LM pretraining", "seconds": round(mlm_seconds, 1),
               "samples_per_s": round(sum(r["samples"] for r in history) / sum(r["seconds"] for r in history), 1),
               "loss_first_epoch": round(history[0]["loss"], 4), "loss_last_epoch": round(history[-1]["loss"], 4),
               "notes": result.notes}  # fmt: skip
        print(json.dumps(pre), flush=True)
        rows.append(pre)
        for budget in [int(b) for b in args.budgets.split(",")]:
            train, test = split(ds, test_size=0.25, seed=seed, labels_per_class=budget)
            predicted = baseline_predict(train, test, "label", seed=seed)
            accuracy = sum(p == t for p, t in zip(predicted, test.labels)) / len(test)
            rows.append({"seed": seed, "budget": budget, "backbone": "TF-IDF + logistic regression",
                         "strategy": "baseline", "accuracy": round(accuracy, 4)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
            for name, spec in (("base", f"{BASE}?max_length={args.max_length}"), ("+MLM", result.spec)):
                for strategy in ("probe", "finetune"):
                    extra = {} if strategy == "probe" else {"epochs": args.finetune_epochs, "val_size": 0.0}
                    t1 = time.perf_counter()
                    model = hs.fit(ds, backbone=spec, labels_per_class=budget, seed=seed, strategy=strategy,
                                   baseline=False, progress=False, **extra)  # fmt: skip
                    m = model.metrics["label"]
                    row = {"seed": seed, "budget": budget, "backbone": f"{BASE} {name}", "strategy": strategy,
                           "accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4),
                           "wall_s": round(time.perf_counter() - t1, 1), "n_train": model.data_info["n_train"],
                           "n_test": model.data_info["n_test"]}  # fmt: skip
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    payload = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
               "args": {k: str(v) for k, v in vars(args).items()}, "rows": rows}  # fmt: skip
    args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
