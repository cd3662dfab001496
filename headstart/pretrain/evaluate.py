"""Transfer evaluation of a pretrained backbone: does it beat what you would get without it?

On one seeded split of labelled data, a linear probe (standardised features + logistic regression, C=0.1, the
project's raw-pixel baseline) on the new backbone's embeddings is compared with the same probe on
- raw inputs: pixels (images), or TF-IDF with logistic regression C=10 (text, the project's text baseline);
- PCA of the same size as the embedding (images: PCA of raw pixels; text: TruncatedSVD of TF-IDF), fitted on every
  training-split item without labels, as the pretraining saw them;
- the starting backbone, when pretraining continued one (or took a random-init architecture),
at several labels-per-class budgets. The test split is never used for pretraining (the run leaves it out).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headstart.data.dataset import Dataset
from headstart.errors import HeadstartError

EVAL_JSON = "eval.json"
EVAL_MD = "eval.md"
PROBE_C = 0.1
TEXT_C = 10.0


def parse_budgets(text: str) -> tuple[int | None, ...]:
    out: list[int | None] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if part == "all":
            out.append(None)
        elif part.isdigit() and int(part) >= 1:
            out.append(int(part))
        else:
            raise HeadstartError(f"budgets: {part!r} is not a positive whole number or 'all'")
    if not out:
        raise HeadstartError("budgets: give at least one labels-per-class budget, e.g. 4,10,all")
    return tuple(out)


def budget_name(budget: int | None) -> str:
    return "all" if budget is None else f"{budget}/class"


def transfer_evaluation(
    spec: str,
    ds: Dataset,
    *,
    start: str | None = None,
    out: Path | None = None,
    budgets: Sequence[int | None] = (4, 10, None),
    test_size: float = 0.25,
    seed: int = 0,
    progress: bool = True,
    label: str = "pretrained",
) -> dict[str, Any]:
    """Probe accuracy of `spec` vs raw inputs vs PCA vs `start` on `ds`, per budget; written to `out` if given."""
    from headstart.backbones.registry import create_backbone
    from headstart.data import split
    from headstart.features.extract import extract_features

    if not ds.labelled:
        raise HeadstartError(f"{ds.source} has no labels; --eval needs labelled data")
    indexed = Dataset(ds.modality, ds.items, ds.targets, [str(i) for i in range(len(ds))], ds.source)
    train_all, test = split(indexed, test_size=test_size, seed=seed)
    train_idx, test_idx = _indices(train_all), _indices(test)
    y = np.asarray(ds.labels, dtype=object)

    backbone = create_backbone(spec)
    if backbone.modality != ds.modality:
        raise HeadstartError(f"{spec} is a {backbone.modality} backbone; {ds.source} is {ds.modality} data")
    features: dict[str, Callable[[], np.ndarray]] = {}
    dim = backbone.embed_dim
    features[f"{label} ({dim}-d)"] = lambda: extract_features(backbone, ds, cache=False, progress=progress)
    raw, reduced = _baselines(ds, train_idx, dim)
    features[raw[0]] = raw[1]
    features[reduced[0]] = reduced[1]
    if start:
        start_bb = create_backbone(start)
        features[f"start: {start} ({start_bb.embed_dim}-d)"] = lambda: extract_features(start_bb, ds, progress=progress)

    rows = []
    for name, make in features.items():
        x = make()
        text_raw = ds.modality == "text" and name == raw[0]
        for budget in budgets:
            if budget is None:
                chosen = train_idx
            else:
                sub, _ = split(indexed, test_size=test_size, seed=seed, labels_per_class=budget)
                chosen = _indices(sub)
            acc, f1 = _probe(x, y, chosen, test_idx, seed, text_raw)
            rows.append({"representation": name, "budget": budget_name(budget), "accuracy": acc, "macro_f1": f1})
    result = {
        "data": ds.source,
        "backbone": spec,
        "start": start,
        "seed": seed,
        "test_size": test_size,
        "n_train": len(train_idx),
        "n_test": len(test_idx),
        "budgets": [budget_name(b) for b in budgets],
        "probe": f"standardised features + logistic regression (C={PROBE_C})"
        + (f"; raw text: TF-IDF + logistic regression (C={TEXT_C})" if ds.modality == "text" else ""),
        "rows": rows,
    }
    if out is not None:
        from headstart.paths import atomic_file

        with atomic_file(Path(out) / EVAL_JSON) as f:
            json.dump(result, f, indent=2)
        with atomic_file(Path(out) / EVAL_MD) as f:
            f.write(evaluation_markdown(result))
    return result


def _indices(part: Dataset) -> np.ndarray:
    return np.asarray([int(w) for w in part.where], dtype=int)


def _baselines(ds: Dataset, train_idx: np.ndarray, dim: int) -> tuple[tuple[str, Any], tuple[str, Any]]:
    """(name, features()) for raw inputs and for PCA / TruncatedSVD of them to `dim` components."""
    if ds.modality == "text":
        from sklearn.decomposition import TruncatedSVD
        from sklearn.feature_extraction.text import TfidfVectorizer

        vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), max_features=100_000)
        vectorizer.fit([ds.items[i] for i in train_idx])
        tfidf = vectorizer.transform(ds.items)
        k = max(1, min(dim, tfidf.shape[1] - 1, len(train_idx) - 1))
        svd = TruncatedSVD(n_components=k, random_state=0).fit(tfidf[train_idx])
        return ("TF-IDF (raw inputs)", lambda: tfidf), (f"TruncatedSVD-{k} of TF-IDF", lambda: svd.transform(tfidf))
    from sklearn.decomposition import PCA

    from headstart.evaluation.baselines import raw_pixels

    pixels = raw_pixels(ds.items)
    k = max(1, min(dim, pixels.shape[1], len(train_idx) - 1))
    pca = PCA(n_components=k, random_state=0).fit(pixels[train_idx])
    return (f"raw pixels ({pixels.shape[1]}-d)", lambda: pixels), (f"PCA-{k} of pixels", lambda: pca.transform(pixels))


def _probe(
    x: Any, y: np.ndarray, train: np.ndarray, test: np.ndarray, seed: int, text_raw: bool
) -> tuple[float, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if text_raw:
        model = LogisticRegression(C=TEXT_C, max_iter=2000, random_state=seed)
    else:
        model = make_pipeline(StandardScaler(), LogisticRegression(C=PROBE_C, max_iter=2000, random_state=seed))
    model.fit(x[train], y[train])
    pred = model.predict(x[test])
    return float(accuracy_score(y[test], pred)), float(f1_score(y[test], pred, average="macro"))


def pivot(result: dict[str, Any]) -> list[tuple[str, list[float]]]:
    """(representation, accuracy per budget) rows, in the order they were evaluated."""
    table: dict[str, dict[str, float]] = {}
    for r in result["rows"]:
        table.setdefault(r["representation"], {})[r["budget"]] = r["accuracy"]
    return [(name, [accs[b] for b in result["budgets"]]) for name, accs in table.items()]


def evaluation_markdown(result: dict[str, Any]) -> str:
    head = f"# Transfer evaluation on {result['data']}"
    lines = [
        head,
        "",
        f"Linear probe ({result['probe']}); test accuracy on {result['n_test']} held-out items "
        f"(split seed {result['seed']}, test size {result['test_size']}), by labelled items per class.",
        "",
        "| representation | " + " | ".join(result["budgets"]) + " |",
        "|---" + "|---:" * len(result["budgets"]) + "|",
    ]
    for name, accs in pivot(result):
        lines.append(f"| {name} | " + " | ".join(f"{a:.4f}" for a in accs) + " |")
    return "\n".join(lines) + "\n"


def evaluation_table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"transfer evaluation on {result['data']} (linear probe, test accuracy)")
    table.add_column("representation", overflow="fold")
    for b in result["budgets"]:
        table.add_column(b, justify="right")
    rows = pivot(result)
    best = [max(accs[i] for _, accs in rows) for i in range(len(result["budgets"]))]
    for name, accs in rows:
        cells = [f"[bold]{a:.4f}[/bold]" if a == best[i] else f"{a:.4f}" for i, a in enumerate(accs)]
        table.add_row(name, *cells)
    return table
