"""Data diagnostics on one backbone's embeddings: what to fix in a data set before trusting a model fitted on it.

- class balance;
- exact duplicates (same content hash) and near-duplicates (cosine similarity of centred embeddings at or above a
  threshold), and those shared between the train and test parts of the default split (leakage);
- likely mislabelled items, confident-learning style: out-of-fold class probabilities from a cross-validated
  logistic regression; an item is suspect when the probability of its given label is below that class's threshold
  (the mean probability the model gives the class on items labelled with it) and another class reaches its own;
- outliers: items far from their nearest neighbours (a robust z-score of the mean Euclidean distance to the 5
  nearest); the distance to the class centroid (z-score within the class) is reported beside it;
- with a target set, a domain-shift test (`headstart.select.shift`) and a plain-language verdict.

The checks on features are plain functions, so they can be tested (and used) on any embeddings.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from headstart.data import Dataset, split
from headstart.errors import DataError
from headstart.select.diagnosis import Diagnosis

NEAR_THRESHOLD = 0.98  # cosine similarity of centred embeddings; distinct digits reach about 0.97 with Lite0
OUTLIER_Z = 3.5  # robust z-score (median / MAD) above which an item counts as an outlier
NEIGHBOURS = 5
MAX_PAIRS = 100_000  # near-duplicate pairs kept; more means the threshold is too low for this backbone
_PROBE_COMPONENTS = 256  # the label check's logistic regression sees at most this many principal components
# Stronger than scikit-learn's default C=1: with noisy labels it keeps the out-of-fold model from fitting them
# (5% flipped digit labels, Lite0 features: F1 of the suspect list 0.63 at C=1, 0.72 at C=0.1).
_PROBE_C = 0.1
_BLOCK = 2048  # rows per block of the similarity matrix


def centred(features: np.ndarray) -> np.ndarray:
    """Embeddings minus their mean, float64. Centring removes the direction every embedding shares (large for
    random or un-normalised encoders), which otherwise makes all items look alike to cosine similarity."""
    x = np.asarray(features, dtype=np.float64)
    return x - x.mean(axis=0)


# ---------------------------------------------------------------- balance and duplicates


def class_balance(labels: list[str]) -> dict[str, Any]:
    counts = Counter(labels)
    most, least = max(counts.values()), min(counts.values())
    return {
        "counts": dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        "classes": len(counts),
        "largest": most,
        "smallest": least,
        "ratio": most / least,
    }


def exact_duplicate_groups(hashes: list[str]) -> list[list[int]]:
    """Indices of items sharing a content hash, one list per hash seen more than once."""
    groups: dict[str, list[int]] = {}
    for i, h in enumerate(hashes):
        groups.setdefault(h, []).append(i)
    return [g for g in groups.values() if len(g) > 1]


def neighbours(
    x: np.ndarray, k: int, threshold: float | None = None
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, float]]]:
    """For centred embeddings `x`: each row's k nearest other rows by Euclidean distance (indices, distances,
    nearest first), and the pairs i < j whose cosine similarity is at or above `threshold` (at most about
    MAX_PAIRS). Computed block by block, so memory stays O(block x N).

    Outliers are judged by distance, near-duplicates by angle: an odd item often stands out by its norm alone
    (noise images embed about twice as far from the mean as digits do with Lite0), while a near-copy has the
    same direction whatever the encoder's scale.
    """
    n = len(x)
    k = max(0, min(k, n - 1))
    idx = np.zeros((n, k), dtype=np.int64)
    dist = np.zeros((n, k))
    pairs: list[tuple[int, int, float]] = []
    sq = np.sum(x**2, axis=1)
    norms = np.maximum(np.sqrt(sq), 1e-12)
    for start in range(0, n, _BLOCK):
        gram = x[start : start + _BLOCK] @ x.T
        rows = np.arange(len(gram))
        if k:
            d2 = np.maximum(sq[start : start + len(gram), None] + sq[None, :] - 2 * gram, 0.0)
            d2[rows, start + rows] = np.inf  # not one's own neighbour
            top = np.argpartition(d2, k - 1, axis=1)[:, :k]
            top_d2 = np.take_along_axis(d2, top, axis=1)
            order = np.argsort(top_d2, axis=1)
            idx[start : start + len(gram)] = np.take_along_axis(top, order, axis=1)
            dist[start : start + len(gram)] = np.sqrt(np.take_along_axis(top_d2, order, axis=1))
        if threshold is not None and len(pairs) < MAX_PAIRS:
            cosine = gram / norms[start : start + len(gram), None] / norms[None, :]
            for i, j in zip(*np.nonzero(cosine >= threshold)):
                if start + i < j:
                    pairs.append((int(start + i), int(j), float(cosine[i, j])))
    return idx, dist, pairs[:MAX_PAIRS]


def default_split_test_mask(ds: Dataset, *, test_size: float, seed: int, task: str | None) -> np.ndarray:
    """True for the items `split(ds, test_size=..., seed=...)` puts in the test part: the split `fit` uses."""
    proxy = Dataset(ds.modality, ds.items, ds.targets, [str(i) for i in range(len(ds))], ds.source, groups=ds.groups)
    _, test = split(proxy, test_size=test_size, seed=seed, task=task)
    mask = np.zeros(len(ds), dtype=bool)
    mask[[int(w) for w in test.where]] = True
    return mask


def leaked_pairs(
    groups: list[list[int]], near: list[tuple[int, int, float]], test_mask: np.ndarray
) -> list[tuple[int, int, float, bool]]:
    """(train index, test index, similarity, exact) for each duplicate or near-duplicate pair across the split."""
    out = []
    for group in groups:
        train = [i for i in group if not test_mask[i]]
        out += [(train[0], j, 1.0, True) for j in group if test_mask[j] and train]
    for i, j, s in near:
        if test_mask[i] != test_mask[j]:
            out.append((j, i, s, False) if test_mask[i] else (i, j, s, False))
    return out


# ---------------------------------------------------------------- labels and outliers


def out_of_fold_probabilities(features: np.ndarray, labels: np.ndarray, *, folds: int = 5, seed: int = 0):
    """(classes, N x C probabilities) from a cross-validated logistic regression (C=0.1) on standardised features
    (at most `_PROBE_COMPONENTS` principal components, fitted without labels)."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x = np.asarray(features, dtype=np.float64)
    if x.shape[1] > _PROBE_COMPONENTS and len(x) > _PROBE_COMPONENTS:
        x = PCA(_PROBE_COMPONENTS, svd_solver="randomized", random_state=seed).fit_transform(x)
    classes, y = np.unique(labels, return_inverse=True)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=_PROBE_C, max_iter=1000))
    return classes, cross_val_predict(probe, x, y, cv=cv, method="predict_proba")


def label_issues(probs: np.ndarray, given: np.ndarray) -> list[tuple[int, int, float, float]]:
    """(index, suggested class, p(given), p(suggested)) of likely mislabelled items, least self-confident first.

    Confident learning's per-class threshold t_c is the mean out-of-fold probability of class c over items
    labelled c. Item i (label y) is suspect when p_y < t_y and some other class k has p_k >= t_k; the suggestion
    is the most probable such k.
    """
    n_classes = probs.shape[1]
    thresholds = np.array([probs[given == c, c].mean() if np.any(given == c) else 1.0 for c in range(n_classes)])
    confident = probs >= thresholds
    confident[np.arange(len(given)), given] = False
    self_p = probs[np.arange(len(given)), given]
    suspects = np.flatnonzero((self_p < thresholds[given]) & confident.any(axis=1))
    out = []
    for i in suspects:
        others = np.where(confident[i], probs[i], -1.0)
        k = int(np.argmax(others))
        out.append((int(i), k, float(self_p[i]), float(probs[i, k])))
    return sorted(out, key=lambda r: r[2])


def robust_z(values: np.ndarray) -> np.ndarray:
    """(x - median) / (1.4826 MAD): a z-score that a few extreme values cannot drag along."""
    median = np.median(values)
    mad = 1.4826 * np.median(np.abs(values - median))
    if mad <= 0:
        mad = np.std(values) or 1.0
    return (values - median) / mad


def centroid_z(x: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per item, the robust z-score of its Euclidean distance to its class centroid, within its class."""
    z = np.zeros(len(x))
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        z[members] = robust_z(np.linalg.norm(x[members] - x[members].mean(axis=0), axis=1))
    return z


# ---------------------------------------------------------------- the whole diagnosis


def diagnose(
    data: Dataset,
    *,
    backbone: str,
    target: Dataset | None = None,
    out: str | Path | None = None,
    task: str | None = None,
    test_size: float = 0.25,
    seed: int = 0,
    near_threshold: float = NEAR_THRESHOLD,
    outlier_z: float = OUTLIER_Z,
    folds: int = 5,
    permutations: int = 500,
    max_shift_items: int = 1000,
    batch_size: int = 32,
    cache: bool = True,
    progress: bool = True,
) -> Diagnosis:
    """Run every check on `data` (and the shift test against `target`) with one backbone's embeddings.

    With `out`, writes report.json, report.md and embedding-map.png there.
    """
    from headstart.backbones import create_backbone
    from headstart.features import extract_features

    seconds: dict[str, float] = {}
    t0 = time.perf_counter()
    from headstart.backbones.registry import check_modality

    bb = create_backbone(backbone)
    for ds in (data, target):
        if ds is not None:
            check_modality(bb, ds)
    features = extract_features(bb, data, batch_size=batch_size, cache=cache, progress=progress)
    target_features = None
    if target is not None:
        target_features = extract_features(bb, target, batch_size=batch_size, cache=cache, progress=progress)
    seconds["extract"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    found = _run_checks(data, np.asarray(features), task, test_size, seed, near_threshold, outlier_z, folds)
    seconds["checks"] = time.perf_counter() - t0
    shift = None
    if target is not None:
        t0 = time.perf_counter()
        shift = _shift(features, target_features, target, permutations, max_shift_items, seed)
        seconds["shift"] = time.perf_counter() - t0

    diagnosis = Diagnosis(
        data={
            "source": data.source,
            "n_items": len(data),
            "backbone": bb.spec,
            "embed_dim": bb.embed_dim,
            "task": (task or data.tasks[0]) if data.labelled else None,
            "test_size": test_size,
            "seed": seed,
            "near_threshold": near_threshold,
            "outlier_z": outlier_z,
            "skipped": [str(i) for i in data.issues],
        },
        shift=shift,
        seconds=seconds,
        **found,
    )
    if out is not None:
        from headstart.select.diagnose_report import write_diagnosis

        t0 = time.perf_counter()
        write_diagnosis(Path(out), diagnosis, features, data, target_features)
        seconds["report"] = time.perf_counter() - t0
    return diagnosis


def _run_checks(
    data: Dataset,
    features: np.ndarray,
    task: str | None,
    test_size: float,
    seed: int,
    near_threshold: float,
    outlier_z: float,
    folds: int,
) -> dict[str, Any]:
    where = data.where
    labels = (data.targets[task] if task else data.labels) if data.labelled else None
    label_of = (lambda i: labels[i]) if labels is not None else (lambda i: None)
    notes: list[str] = []

    groups = exact_duplicate_groups(data.content_hashes())
    exact = []
    for g in groups:
        names, tags = [where[i] for i in g], [label_of(i) for i in g]
        exact.append({"where": names, "labels": tags, "conflicting": len(set(tags)) > 1})
    # Near-duplicates and neighbours among distinct contents: one representative per exact-duplicate group.
    duplicate_of = {j: g[0] for g in groups for j in g[1:]}
    reps = np.array([i for i in range(len(data)) if i not in duplicate_of])
    x = centred(features)
    _, nn_dist, near_rep = neighbours(x[reps], NEIGHBOURS, near_threshold)
    near = [(int(reps[i]), int(reps[j]), s) for i, j, s in near_rep]
    if len(near) >= MAX_PAIRS:
        notes.append(f"near-duplicates: stopped at {MAX_PAIRS} pairs; raise the threshold ({near_threshold})")
    near_dups = [
        {"a": where[i], "b": where[j], "similarity": s, "labels": [label_of(i), label_of(j)]}
        for i, j, s in sorted(near, key=lambda p: -p[2])
    ]

    knn_z = np.zeros(len(data))
    knn_z[reps] = robust_z(nn_dist.mean(axis=1)) if nn_dist.size else 0.0
    for j, i in duplicate_of.items():
        knn_z[j] = knn_z[i]
    cz = centroid_z(x, np.asarray(labels)) if labels is not None else None
    outliers = []
    for i in np.argsort(-knn_z):
        if knn_z[i] <= outlier_z:
            break
        centroid = None if cz is None else float(cz[i])
        outliers.append({"where": where[i], "label": label_of(i), "knn_z": float(knn_z[i]), "centroid_z": centroid})

    balance = leakage = issues = None
    if labels is None:
        notes.append("no labels: class balance, label checks and the split leakage check were skipped")
    else:
        balance = class_balance(labels)
        try:
            mask = default_split_test_mask(data, test_size=test_size, seed=seed, task=task)
            leakage = [
                {"train": where[i], "test": where[j], "similarity": s, "exact": exact}
                for i, j, s, exact in leaked_pairs(groups, near, mask)
            ]
        except DataError as exc:
            notes.append(f"leakage check skipped: {exc}")
        issues = _label_check(features, np.asarray(labels), where, folds, seed, notes)
    return {
        "balance": balance,
        "exact_duplicates": exact,
        "near_duplicates": near_dups,
        "leakage": leakage,
        "label_issues": issues,
        "outliers": outliers,
        "notes": notes,
    }


def _label_check(
    features: np.ndarray, labels: np.ndarray, where: list[str], folds: int, seed: int, notes: list[str]
) -> list[dict[str, Any]] | None:
    smallest = min(Counter(labels.tolist()).values())
    k = min(folds, smallest)
    if k < 2 or len(set(labels.tolist())) < 2:
        notes.append("label check skipped: it needs 2 classes and at least 2 items per class")
        return None
    classes, probs = out_of_fold_probabilities(features, labels, folds=k, seed=seed)
    given = np.searchsorted(classes, labels)
    found = []
    for i, k, p_given, p_suggested in label_issues(probs, given):
        suggestion = {"suggested": str(classes[k]), "p_given": p_given, "p_suggested": p_suggested}
        found.append({"where": where[i], "given": str(classes[given[i]]), **suggestion})
    return found


def _shift(
    features: np.ndarray,
    target_features: np.ndarray,
    target: Dataset,
    permutations: int,
    limit: int,
    seed: int,
) -> dict[str, Any]:
    from headstart.select.shift import classifier_test, mmd_test, subsample, verdict

    rng = np.random.default_rng(seed)
    s, t = subsample(features, limit, rng), subsample(target_features, limit, rng)
    c2st = classifier_test(s, t, permutations=permutations, seed=seed)
    mmd = mmd_test(s, t, permutations=permutations, seed=seed)
    level, sentence = verdict(c2st, mmd)
    return {
        "target": target.source,
        "n_target": len(target),
        "classifier": c2st.to_dict(),
        "mmd": mmd.to_dict(),
        "level": level,
        "verdict": sentence,
    }
