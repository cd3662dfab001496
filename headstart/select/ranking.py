"""Ranking candidate backbones for a labelled data set by transferability scores, before fitting anything.

For each backbone: features through the on-disk cache (and the source classifier's logits, where it has one),
then LogME, LEEP, NCE, the shrunk H-score, kNN accuracy and, as the costly reference, the cross-validated accuracy
of a linear probe. Scores are computed on the training part of the same seeded split `headstart fit` uses (with
`labels_per_class`, only that many labelled items per class), so the test part stays unseen.

Every score reported by default can be compared across backbones whose embeddings differ in size (see
`headstart.select.scores`); compare values within one score, never across scores or data sets.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from headstart.backbones import Backbone, create_backbone
from headstart.data import Dataset, split
from headstart.errors import DataError
from headstart.select.scores import SCORES

DEFAULT_SCORES = ("logme", "leep", "nce", "hscore_shrinkage", "knn", "linear_probe")
REFERENCE = "linear_probe"
SHORT = {"hscore_shrinkage": "H (shrunk)", "knn": "kNN", "linear_probe": "probe"}  # table headers
LABELS = {
    "logme": "LogME",
    "leep": "LEEP",
    "nce": "NCE",
    "hscore": "H-score",
    "hscore_shrinkage": "H-score (shrunk)",
    "knn": "kNN acc.",
    "linear_probe": "probe acc. (CV)",
}
COMPARABILITY = (
    "Scores are comparable across embedding sizes: LogME is a per-sample log evidence whose prior covers every "
    "embedding dimension; LEEP and NCE see only the source classifier's outputs (backbones without one get none); "
    "the H-score is Ledoit-Wolf shrunk, since the plain H-score grows with the dimension even for noise; kNN and "
    "probe accuracies share the 0..1 scale. Compare backbones within one score column, not values across columns "
    "or data sets."
)


@dataclass
class BackboneScores:
    """One candidate's scores (None where a score does not apply) and where its time went, in seconds."""

    spec: str
    embed_dim: int
    source_classifier: bool | None  # None when no score needed to know
    scores: dict[str, float | None]
    seconds: dict[str, float]
    notes: list[str] = field(default_factory=list)


@dataclass
class Ranking:
    """Candidates sorted by `score`, best first; `recommended` is the best one that has that score."""

    score: str
    results: list[BackboneScores]
    recommended: str | None
    data: dict[str, Any]
    agreement: dict[str, float | None]
    notes: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {
            "title": f"rank: {self.data['source']} by {self.score}",
            "score": self.score,
            "recommended": self.recommended,
            "data": self.data,
            "backbones": [asdict(r) for r in self.results],
            "agreement_with_probe_kendall_tau": self.agreement,
            "comparability": COMPARABILITY,
            "notes": self.notes,
        }


def rank(
    data: Dataset,
    backbones: Sequence[str | Backbone],
    *,
    score: str = "logme",
    scores: Sequence[str] | None = None,
    labels_per_class: int | None = None,
    seed: int = 0,
    test_size: float = 0.25,
    task: str | None = None,
    folds: int = 5,
    knn_k: int = 5,
    batch_size: int = 32,
    cache: bool = True,
    progress: bool = True,
    out: str | Path | None = None,
) -> Ranking:
    """Score every backbone on `data` and sort them by `score` (higher is better for every score).

    `scores`: which to compute (default: all of `DEFAULT_SCORES`; leave out "linear_probe" to skip the costly
    reference). `backbones`: specs such as `timm:resnet18`, or Backbone objects. With `out`, writes
    rank.json and rank.md there.
    """
    wanted = _wanted_scores(score, scores)
    if not backbones:
        raise DataError("give at least one backbone to rank")
    train, _ = split(data, test_size=test_size, seed=seed, labels_per_class=labels_per_class, task=task)
    labels = np.asarray(train.targets[task] if task else train.labels)
    counts = np.unique(labels, return_counts=True)[1]
    results = []
    for candidate in backbones:
        options = {"folds": folds, "knn_k": knn_k, "seed": seed, "batch_size": batch_size, "cache": cache}
        results.append(_score_backbone(candidate, train, labels, wanted, progress=progress, **options))
        gc.collect()  # one backbone's weights at a time

    results.sort(key=lambda r: _sort_key(r, score))
    best = next((r.spec for r in results if r.scores.get(score) is not None), None)
    notes = []
    if score == "hscore" and len({r.embed_dim for r in results}) > 1:
        notes.append("the plain H-score grows with the embedding size; rank by hscore_shrinkage to compare sizes")
    without = [r.spec for r in results if r.source_classifier is False]
    needing = [LABELS[s] for s in wanted if SCORES[s].needs == "source_probs"]
    if without and needing:
        notes.append(f"{' and '.join(needing)} need a source classifier; none for {', '.join(without)}")
    missing = [r.spec for r in results if r.scores.get(score) is None]
    if missing:
        notes.append(f"no {score} for {', '.join(missing)}; they are listed last and not recommended")
    ranking = Ranking(
        score=score,
        results=results,
        recommended=best,
        data={
            "source": data.source,
            "task": task or data.tasks[0],
            "n_items": len(data),
            "n_scored": len(train),
            "classes": int(len(counts)),
            "smallest_class": int(counts.min()),
            "labels_per_class": labels_per_class,
            "test_size": test_size,
            "seed": seed,
        },
        agreement=_agreement(results, wanted),
        notes=notes,
    )
    if out is not None:
        write_ranking(Path(out), ranking)
    return ranking


def _wanted_scores(score: str, scores: Sequence[str] | None) -> list[str]:
    wanted = list(scores) if scores else list(DEFAULT_SCORES)
    unknown = [s for s in [score, *wanted] if s not in SCORES]
    if unknown:
        raise DataError(f"unknown score {unknown[0]!r}; the scores are: {', '.join(SCORES)}")
    return wanted if score in wanted else [*wanted, score]


def _score_backbone(
    candidate: str | Backbone,
    train: Dataset,
    labels: np.ndarray,
    wanted: list[str],
    *,
    folds: int,
    knn_k: int,
    seed: int,
    batch_size: int,
    cache: bool,
    progress: bool,
) -> BackboneScores:
    from headstart.features import extract_features
    from headstart.features.source import extract_source_logits, softmax

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    backbone = create_backbone(candidate) if isinstance(candidate, str) else candidate
    if backbone.modality != train.modality:
        raise DataError(
            f"{train.source} holds {train.modality} data but backbone {backbone.spec} encodes {backbone.modality}"
        )
    seconds["load"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    features = extract_features(backbone, train, batch_size=batch_size, cache=cache, progress=progress)
    features = np.asarray(features, dtype=np.float64)
    seconds["extract"] = time.perf_counter() - t0
    probs, has_source = None, None  # None: not looked for (no score needs it)
    if any(SCORES[s].needs == "source_probs" for s in wanted):
        t0 = time.perf_counter()
        logits = extract_source_logits(backbone, train, batch_size=batch_size, cache=cache, progress=progress)
        probs, has_source = (None, False) if logits is None else (softmax(logits), True)
        seconds["extract_source"] = time.perf_counter() - t0

    values: dict[str, float | None] = {}
    notes: list[str] = []
    for name in wanted:
        t0 = time.perf_counter()
        values[name], note = _one_score(name, features, probs, labels, folds=folds, knn_k=knn_k, seed=seed)
        seconds[f"score_{name}"] = time.perf_counter() - t0
        if note:
            notes.append(f"{name}: {note}")
    # the transferability scores proper, and apart from them the probe they stand in for
    seconds["score"] = sum(v for k, v in seconds.items() if k.startswith("score_") and k != f"score_{REFERENCE}")
    seconds["reference"] = seconds.get(f"score_{REFERENCE}", 0.0)
    result = BackboneScores(backbone.spec, backbone.embed_dim, has_source, values, seconds, notes)
    del backbone
    return result


def _one_score(
    name: str,
    features: np.ndarray,
    probs: np.ndarray | None,
    labels: np.ndarray,
    *,
    folds: int,
    knn_k: int,
    seed: int,
) -> tuple[float | None, str | None]:
    """The score's value, or None and why not."""
    spec = SCORES[name]
    if spec.needs == "source_probs":
        return (None, None) if probs is None else (spec.fn(probs, labels), None)
    fn: Callable[..., float] = spec.fn
    if name in ("knn", "linear_probe"):
        smallest = int(np.unique(labels, return_counts=True)[1].min())
        k_folds = min(folds, smallest)
        if k_folds < 2:
            return None, "cross-validation needs at least 2 labelled items per class"
        if name == "knn":
            k = min(knn_k, _smallest_train_fold(labels, k_folds, seed))
            return fn(features, labels, k=k, folds=k_folds, seed=seed), None
        return fn(features, labels, folds=k_folds, seed=seed), None
    return fn(features, labels), None


def _smallest_train_fold(labels: np.ndarray, folds: int, seed: int) -> int:
    from sklearn.model_selection import StratifiedKFold

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    return min(len(train) for train, _ in cv.split(np.zeros(len(labels)), labels))


def _sort_key(result: BackboneScores, score: str) -> tuple[int, float]:
    value = result.scores.get(score)
    return (1, 0.0) if value is None else (0, -value)


def _agreement(results: list[BackboneScores], wanted: list[str]) -> dict[str, float | None]:
    """Kendall tau between each score and the probe's accuracy across backbones (needs 3 or more)."""
    from scipy.stats import kendalltau

    if REFERENCE not in wanted:
        return {}
    taus: dict[str, float | None] = {}
    for name in wanted:
        if name == REFERENCE:
            continue
        pairs = [(r.scores[name], r.scores[REFERENCE]) for r in results]
        pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
        tau = kendalltau(*zip(*pairs)).statistic if len(pairs) >= 3 else None
        taus[name] = None if tau is None or np.isnan(tau) else float(tau)
    return taus


# ---------------------------------------------------------------- report


def write_ranking(out: Path, ranking: Ranking) -> tuple[Path, Path]:
    """rank.json and rank.md in `out`."""
    import json

    from headstart.paths import atomic_file

    out.mkdir(parents=True, exist_ok=True)
    report = ranking.to_dict()
    with atomic_file(out / "rank.json") as f:
        json.dump(report, f, indent=2, default=str)
    with atomic_file(out / "rank.md") as f:
        f.write(ranking_markdown(ranking))
    return out / "rank.json", out / "rank.md"


def format_score(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def score_names(ranking: Ranking) -> list[str]:
    return list(ranking.results[0].scores) if ranking.results else []


def ranking_markdown(ranking: Ranking) -> str:
    d = ranking.data
    names = score_names(ranking)
    budget = f"{d['labels_per_class']} labelled items per class" if d["labels_per_class"] else "all labelled items"
    lines = [
        f"# Backbones for {d['source']}, ranked by {LABELS.get(ranking.score, ranking.score)}",
        "",
        f"- **recommended**: {ranking.recommended or 'none (no backbone has this score)'}",
        f"- **scored on**: {d['n_scored']} training items of {d['n_items']} ({budget}; split test_size "
        f"{d['test_size']}, seed {d['seed']}), {d['classes']} classes in `{d['task']}`",
        "",
        "| # | backbone | dim | " + " | ".join(LABELS.get(n, n) for n in names) + " | extract s | score s | probe s |",
        "|---|---|---|" + "---|" * len(names) + "---|---|---|",
    ]
    for i, r in enumerate(ranking.results, 1):
        extract = r.seconds["extract"] + r.seconds.get("extract_source", 0.0)
        cells = [format_score(r.scores[n]) for n in names]
        lines.append(
            f"| {i} | `{r.spec}` | {r.embed_dim} | "
            + " | ".join(cells)
            + f" | {extract:.2f} | {r.seconds['score']:.2f} | {r.seconds['reference']:.2f} |"
        )
    if any(v is not None for v in ranking.agreement.values()):
        lines += ["", "Agreement of each score with the probe's cross-validated accuracy (Kendall tau):", ""]
        lines += [f"- {LABELS.get(k, k)}: {format_score(v, 3)}" for k, v in ranking.agreement.items()]
    times = "Times in seconds: extraction (features and source logits, through the cache), scores, linear probe."
    lines += ["", times, "", COMPARABILITY, ""]
    for r in ranking.results:
        lines += [f"- `{r.spec}`: {note}" for note in r.notes]
    lines += [f"- {note}" for note in ranking.notes]
    return "\n".join(lines).rstrip() + "\n"
