"""The TF-IDF baseline's cross-validation: texts counted once (`TermCounts`) against the vectorizer refitted per fold.

    python benchmarks/tfidf_folds.py [--items N] [--folds K] [--repeat R] [--out PATH]

`auto` and `fit --test-size 0` score the text baseline on folds, and each fold's vectorizer must be fitted on that
fold's training texts alone. The reference, measured in the same run, is what they did before: scikit-learn's
TfidfVectorizer (words and word pairs, sublinear tf, 20,000 terms) fitted on each fold's training texts, then applied
to its test texts. `TermCounts` counts every text once and derives each fold's vocabulary, IDF weights and rows from
the counts. Both produce the same float32 rows (checked here on every fold, not assumed). Data: the first N articles
of samples:bbc-news, stratified K folds; best of R runs. Writes benchmarks/results/tfidf_folds.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "tfidf_folds.json"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1669, help="articles (1,669: the quick start's 'all' budget)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    from sklearn.model_selection import StratifiedKFold

    from headstart.backbones.featurizers import TermCounts, fit_tfidf_rows
    from headstart.data import load_data

    ds = load_data("samples:bbc-news")
    texts = [str(t) for t in ds.items][: args.items]
    y = np.asarray(ds.targets["label"][: args.items])
    folds = list(StratifiedKFold(args.folds, shuffle=True, random_state=0).split(texts, y))

    def refit() -> list[tuple[np.ndarray, np.ndarray]]:
        out = []
        for tr, te in folds:
            bb, x = fit_tfidf_rows([texts[i] for i in tr])
            out.append((x, bb.sparse_rows([texts[i] for i in te])))
        return out

    def counted() -> list[tuple[np.ndarray, np.ndarray]]:
        counts = TermCounts(texts)
        return [counts.fit(tr, te)[1:] for tr, te in folds]

    timings: dict[str, float] = {}
    rows: dict[str, list] = {}
    for name, run in (("refit per fold (reference)", refit), ("counted once", counted)):
        best = float("inf")
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            rows[name] = run()
            best = min(best, time.perf_counter() - t0)
        timings[name] = best
    same = all(
        (a != c).nnz == 0 and (b != d).nnz == 0 for (a, b), (c, d) in zip(*rows.values(), strict=True)
    )  # sparse rows: no entry differs
    reference = timings["refit per fold (reference)"]
    print(f"{args.folds} folds of {len(texts)} BBC News articles, best of {args.repeat}; rows identical: {same}")
    for name, seconds in timings.items():
        print(f"  {name:28s} {seconds:6.2f} s   {reference / seconds:4.2f}x the reference")
    result = {
        "command": "python benchmarks/tfidf_folds.py",
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "items": len(texts),
        "folds": args.folds,
        "seconds": timings,
        "speedup": reference / timings["counted once"],
        "rows_identical": same,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    if not same:
        raise SystemExit("the rows differ: TermCounts is not the refitted vectorizer")


if __name__ == "__main__":
    main()
