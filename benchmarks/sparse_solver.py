"""The linear head's solver on mostly-zero rows (TF-IDF): compressed sparse rows against the dense matrix.

    python benchmarks/sparse_solver.py [--items N] [--repeat R] [--out PATH]

The text baseline's head and `auto`'s joined text candidate fit scikit-learn's L-BFGS logistic regression on TF-IDF
rows of 20,000 columns, 1.5% of them non-zero. `heads.linear.sparse_if_mostly_zero` hands such a matrix to the
solver as compressed sparse rows. The reference, measured in the same run, is the dense matrix (the same head with
the switch off). Two fits: the baseline's head (C=10, unscaled, one fit) on the TF-IDF rows of the first N BBC
articles, and the joined candidate's head (MiniLM's features beside the TF-IDF rows, C tuned by 5-fold
cross-validation along the path of C, then the final fit). Both must give the same predictions (checked here: the
largest difference in probability and the labels). Best of R runs; one thread, as heads fit. Writes
benchmarks/results/sparse_solver.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "sparse_solver.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1334, help="articles (1,334: a fold of the quick start's 'all')")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from headstart.backbones import create_backbone
    from headstart.backbones.featurizers import fit_tfidf_rows
    from headstart.data import load_data
    from headstart.features import extract_features
    from headstart.heads import linear, tuning
    from headstart.heads.linear import LinearHead

    ds = load_data("samples:bbc-news").subset(np.arange(args.items))
    y = np.asarray(ds.labels)
    tfidf = fit_tfidf_rows(ds.items)[1].toarray()  # dense rows in: the head's own choice of sparse rows is measured
    minilm = extract_features(create_backbone("st:all-MiniLM-L6-v2"), ds, progress=False)
    joined = np.hstack([minilm, tfidf])
    fits = {
        "baseline head (C=10, one fit)": (tfidf, {"C": 10.0, "scaling": "none"}),
        "joined head (C tuned, 5 folds, then the fit)": (joined, {"scaling": "parts", "parts": [384, tfidf.shape[1]]}),
    }
    rows = []
    for name, (x, params) in fits.items():
        out: dict[str, dict] = {}
        for mode, below in (("dense (reference)", 0.0), ("sparse rows", linear.SPARSE_BELOW)):
            saved, linear.SPARSE_BELOW = linear.SPARSE_BELOW, below
            try:
                best, head = float("inf"), None
                for _ in range(args.repeat):
                    tuning._remembered.clear()  # tune every time: a remembered tuning would skip the path of C
                    t0 = time.perf_counter()
                    head = LinearHead(**params).fit(x, y)
                    best = min(best, time.perf_counter() - t0)
            finally:
                linear.SPARSE_BELOW = saved
            assert head is not None
            out[mode] = {"seconds": best, "proba": head.predict_proba(x), "C": head.C_}
        dense, sparse = out["dense (reference)"], out["sparse rows"]
        row = {
            "fit": name,
            "shape": list(x.shape),
            "non_zero": float(np.count_nonzero(x) / x.size),
            "dense_s": round(dense["seconds"], 2),
            "sparse_s": round(sparse["seconds"], 2),
            "speedup": round(dense["seconds"] / sparse["seconds"], 2),
            "C": [dense["C"], sparse["C"]],
            "max_proba_diff": float(np.abs(dense["proba"] - sparse["proba"]).max()),
            "labels_identical": bool((dense["proba"].argmax(1) == sparse["proba"].argmax(1)).all()),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    meta = {"command": f"python benchmarks/sparse_solver.py --items {args.items} --repeat {args.repeat}",
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "threads": 1}  # fmt: skip
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    for r in rows:
        print(f"{r['fit']}: dense {r['dense_s']} s, sparse {r['sparse_s']} s, {r['speedup']}x; same labels: "
              f"{r['labels_identical']}, largest probability difference {r['max_proba_diff']:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
