"""TF-IDF rows kept sparse end to end: the memory and time of the text baseline's model and of the joined
candidate (a sentence encoder's features beside TF-IDF rows), against the same code given dense rows (as before) and
against scikit-learn's own sparse pipeline as the reference, each in a fresh process (peak resident memory above
what the process held before the fit).

    python benchmarks/sparse_tfidf.py                 # BBC News, every article: 75% train, 25% test
    python benchmarks/sparse_tfidf.py --copies 3      # the articles three times over (a larger set, same vocabulary)

Variants, each fitting on the training texts and predicting the test texts:
  sklearn        TfidfVectorizer(1-2 grams, sublinear tf, 20,000 terms) + LogisticRegression(C=10): the reference
  tfidf-sparse   headstart's TF-IDF model as `auto` scores and saves it (`tfidf_predict`), rows sparse (now)
  tfidf-dense    the same, its rows made dense as before
  joined-sparse  MiniLM's features beside the TF-IDF rows, the head's C tuned on 5 folds (`tfidf_predict(beside=)`)
  joined-dense   the same on dense rows
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "sparse_tfidf.json"
VARIANTS = ("sklearn", "tfidf-sparse", "tfidf-dense", "joined-sparse", "joined-dense")


def rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def data(copies: int) -> tuple[Any, Any, np.ndarray, np.ndarray]:
    from headstart.backbones import create_backbone
    from headstart.data import load_data, split
    from headstart.features import extract_features

    ds = load_data("samples:bbc-news")
    x = extract_features(create_backbone("st:all-MiniLM-L6-v2"), ds, progress=False)
    if copies > 1:  # the same articles again, each copy a new text (a numbered first line) with the same label
        from headstart.data import Dataset

        items = [f"copy {c}\n{t}" for c in range(copies) for t in ds.items]
        ds = Dataset(modality="text", items=items, targets={k: list(v) * copies for k, v in ds.targets.items()},
                     where=[f"{w} (copy {c})" for c in range(copies) for w in ds.where], source=ds.source)  # fmt: skip
        x = np.tile(x, (copies, 1))
    train, test = split(ds, test_size=0.25, seed=0)
    index = {w: i for i, w in enumerate(ds.where)}
    return train, test, x[[index[w] for w in train.where]], x[[index[w] for w in test.where]]


def densify() -> None:
    """Make the TF-IDF path dense, as it was before its rows were kept sparse."""
    from headstart.backbones import featurizers

    fit_rows = featurizers.fit_tfidf_rows
    featurizers.fit_tfidf_rows = lambda texts, *a: (lambda bb, x: (bb, x.toarray()))(*fit_rows(texts, *a))
    sparse_rows = featurizers.TfidfBackbone.sparse_rows
    featurizers.TfidfBackbone.sparse_rows = lambda self, texts: sparse_rows(self, texts).toarray()
    featurizers.side_by_side = lambda dense, rows: np.hstack([dense, rows]).astype(np.float32)


def child(variant: str, copies: int) -> dict[str, Any]:
    from threadpoolctl import threadpool_limits

    train, test, x_train, x_test = data(copies)
    truth = np.asarray(test.labels)
    if variant.endswith("-dense"):
        densify()
    before = rss_mb("VmRSS")
    t0 = time.perf_counter()
    with threadpool_limits(1):
        if variant == "sklearn":
            from sklearn.feature_extraction.text import TfidfVectorizer
            from sklearn.linear_model import LogisticRegression
            from sklearn.pipeline import make_pipeline

            vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), max_features=20_000)
            model = make_pipeline(vec, LogisticRegression(C=10.0, max_iter=1000)).fit(train.items, train.labels)
            pred = model.predict(test.items)
        else:
            from headstart.probe import JOINED_HEAD, tfidf_predict

            joined = variant.startswith("joined")
            pred = tfidf_predict(
                train, test, seed=0, beside=(x_train, x_test) if joined else None,
                head_params=dict(JOINED_HEAD) if joined else None,
            )[train.tasks[0]]  # fmt: skip
    seconds = time.perf_counter() - t0
    return {
        "variant": variant,
        "train": len(train),
        "test": len(test),
        "seconds": round(seconds, 2),
        "peak_mb_above_start": round(rss_mb("VmHWM") - before, 1),
        "accuracy": round(float(np.mean(np.asarray(pred) == truth)), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=1)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--append", action="store_true")
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.copies)))
        return
    data(args.copies)  # the encoder's features into the cache before anything is timed
    rows = []
    for variant in args.variants.split(","):
        cmd = [sys.executable, __file__, "--child", variant, "--copies", str(args.copies)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    by = {r["variant"]: r for r in rows}
    ratios = {}
    for kind in ("tfidf", "joined"):
        if f"{kind}-sparse" in by and f"{kind}-dense" in by:
            s, d = by[f"{kind}-sparse"], by[f"{kind}-dense"]
            ratios[f"{kind}: dense / sparse peak memory"] = round(
                d["peak_mb_above_start"] / s["peak_mb_above_start"], 2
            )
            ratios[f"{kind}: dense / sparse time"] = round(d["seconds"] / s["seconds"], 2)
        if f"{kind}-sparse" in by and "sklearn" in by:
            ref = by["sklearn"]
            ratios[f"{kind}-sparse / sklearn peak memory"] = round(
                by[f"{kind}-sparse"]["peak_mb_above_start"] / ref["peak_mb_above_start"], 2
            )
            ratios[f"{kind}-sparse / sklearn time"] = round(by[f"{kind}-sparse"]["seconds"] / ref["seconds"], 2)
    print(json.dumps(ratios, indent=1))
    entry = {"command": " ".join(["python benchmarks/sparse_tfidf.py", *sys.argv[1:]]), "copies": args.copies,
             "machine": "2 CPU cores, one BLAS thread per fit", "rows": rows, "ratios": ratios}  # fmt: skip
    out_path = Path(args.out)
    runs = json.loads(out_path.read_text())["runs"] if args.append and out_path.exists() else []
    out_path.write_text(json.dumps({"runs": [*runs, entry]}, indent=1) + "\n")


if __name__ == "__main__":
    main()
