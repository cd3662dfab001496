"""Is the target data drawn from the same distribution as the source data? Two tests on backbone embeddings.

1. A classifier two-sample test: a linear classifier learns to tell source from target; its cross-validated
   AUC is 0.5 when they cannot be told apart. The classifier is ridge regression on the top principal components
   (fitted on both sets together, whitened). Its out-of-fold scores are linear in the domain labels, so with the
   folds fixed every permutation of the labels costs one matrix product, and the permutation p-value can afford
   hundreds of refits.
2. The maximum mean discrepancy (MMD, unbiased estimate of MMD^2) with an RBF kernel whose bandwidth is the median
   pairwise distance, and a permutation p-value.

Both p-values are (1 + #permutations at least as extreme) / (1 + permutations).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

_COMPONENTS = 50  # principal components the domain classifier sees
_RIDGE = 1.0  # ridge penalty on whitened components
_FOLDS = 5


@dataclass(frozen=True)
class ShiftTest:
    name: str
    statistic: float
    p_value: float
    permutations: int
    n_source: int
    n_target: int

    def to_dict(self) -> dict:
        return asdict(self)


def subsample(x: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """At most `limit` rows of `x`, chosen at random."""
    if len(x) <= limit:
        return np.asarray(x, dtype=np.float64)
    return np.asarray(x[np.sort(rng.choice(len(x), limit, replace=False))], dtype=np.float64)


def _check(source: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s, t = np.asarray(source, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if s.ndim != 2 or t.ndim != 2 or s.shape[1] != t.shape[1]:
        raise ValueError(f"source and target must be 2-D with the same width, got {s.shape} and {t.shape}")
    if min(len(s), len(t)) < _FOLDS:
        raise ValueError(f"each set needs at least {_FOLDS} items for a shift test, got {len(s)} and {len(t)}")
    return s, t


def whitened_components(x: np.ndarray, k: int, seed: int = 0) -> np.ndarray:
    """The top `k` principal components of `x`, each scaled to unit variance (randomised SVD)."""
    from sklearn.utils.extmath import randomized_svd

    centred = x - x.mean(axis=0)
    k = min(k, *centred.shape)
    u, sv, _ = randomized_svd(centred, k, random_state=seed)
    keep = sv > max(sv[0] * 1e-6, 1e-12)
    return u[:, keep] * np.sqrt(len(x))


def _p_value(observed: float, null: np.ndarray) -> float:
    return float((1 + np.sum(null >= observed - 1e-12)) / (1 + len(null)))


def _label_columns(n_source: int, n_target: int, permutations: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 1 + permutations) domain labels: the observed column (1 = target), then permuted copies."""
    observed = np.r_[np.zeros(n_source), np.ones(n_target)]
    return np.column_stack([observed] + [rng.permutation(observed) for _ in range(permutations)])


def classifier_test(source: np.ndarray, target: np.ndarray, *, permutations: int = 500, seed: int = 0) -> ShiftTest:
    """Cross-validated AUC of a linear domain classifier and its permutation p-value."""
    from sklearn.model_selection import KFold

    s, t = _check(source, target)
    rng = np.random.default_rng(seed)
    z = whitened_components(np.vstack([s, t]), _COMPONENTS, seed)
    if z.shape[1] == 0:  # every item embeds to the same point: nothing to tell apart
        z = np.zeros((len(s) + len(t), 1))

    y = _label_columns(len(s), len(t), permutations, rng)
    oof = np.empty_like(y)
    for train, test in KFold(_FOLDS, shuffle=True, random_state=seed).split(z):
        mean = z[train].mean(axis=0)
        zt = z[train] - mean
        weights = np.linalg.solve(zt.T @ zt + _RIDGE * np.eye(z.shape[1]), zt.T)  # (k, n_train)
        y_mean = y[train].mean(axis=0)
        oof[test] = (z[test] - mean) @ (weights @ (y[train] - y_mean)) + y_mean
    aucs = _auc_columns(oof, y)
    return ShiftTest("classifier AUC", float(aucs[0]), _p_value(aucs[0], aucs[1:]), permutations, len(s), len(t))


def _auc_columns(scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """ROC AUC of each column of scores against the matching column of 0/1 labels (Mann-Whitney, ties averaged)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=0)
    positives = labels.sum(axis=0)
    negatives = len(labels) - positives
    return ((ranks * labels).sum(axis=0) - positives * (positives + 1) / 2) / (positives * negatives)


def mmd_test(source: np.ndarray, target: np.ndarray, *, permutations: int = 500, seed: int = 0) -> ShiftTest:
    """Unbiased MMD^2 with an RBF kernel (bandwidth: the median pairwise distance) and its permutation p-value."""
    s, t = _check(source, target)
    rng = np.random.default_rng(seed + 1)
    pooled = np.vstack([s, t])
    sq = np.sum(pooled**2, axis=1)
    d2 = np.maximum(sq[:, None] + sq[None, :] - 2 * pooled @ pooled.T, 0.0)
    off_diagonal = d2[np.triu_indices(len(pooled), k=1)]
    sigma2 = float(np.median(off_diagonal))
    if sigma2 <= 0:
        sigma2 = float(off_diagonal.mean()) or 1.0
    kernel = np.exp(-d2 / (2 * sigma2))
    del d2

    # With target indicators T (one column per labelling), S = 1 - T:
    # MMD^2_u = (S'KS - n_s) / (n_s (n_s - 1)) + (T'KT - n_t) / (n_t (n_t - 1)) - 2 S'KT / (n_s n_t)
    # (the diagonal of an RBF kernel is all ones).
    indicators = _label_columns(len(s), len(t), permutations, rng)
    n_s, n_t = len(s), len(t)
    k_t = kernel @ indicators
    row = kernel.sum(axis=1)[:, None]
    k_s = row - k_t
    src = 1 - indicators
    sks = np.sum(src * k_s, axis=0)
    tkt = np.sum(indicators * k_t, axis=0)
    skt = np.sum(src * k_t, axis=0)
    mmd2 = (sks - n_s) / (n_s * (n_s - 1)) + (tkt - n_t) / (n_t * (n_t - 1)) - 2 * skt / (n_s * n_t)
    return ShiftTest("MMD^2 (RBF)", float(mmd2[0]), _p_value(mmd2[0], mmd2[1:]), permutations, n_s, n_t)


def verdict(classifier: ShiftTest, mmd: ShiftTest, alpha: float = 0.05) -> tuple[str, str]:
    """A level ("none", "possible", "mild", "clear", "strong") and a sentence a person can act on."""
    auc, p_c, p_m = classifier.statistic, classifier.p_value, mmd.p_value
    tests = f"domain-classifier AUC {auc:.3f} (p = {p_c:.3g}); MMD p = {p_m:.3g}"
    if p_c >= alpha and p_m >= alpha:
        return "none", (
            f"No evidence of a domain shift: a linear classifier cannot tell the two sets apart better than chance "
            f"would allow, and the kernel test agrees ({tests})."
        )
    if (p_c < alpha) != (p_m < alpha):
        which = "classifier" if p_c < alpha else "MMD"
        return "possible", (
            f"Possible slight shift: only the {which} test is significant at {alpha} ({tests}). Check the embedding "
            "map, and evaluate on some labelled target items before trusting source accuracy there."
        )
    level = "strong" if auc >= 0.9 else "clear" if auc >= 0.75 else "mild"
    advice = (
        "Accuracy measured on the source data will likely overstate accuracy on the target. Label some target "
        "items to measure it, and consider continued pretraining on unlabelled target data, augmentation that "
        "mimics the target, or fine-tuning on target data."
    )
    return level, f"{level.capitalize()} domain shift: the two sets are distinguishable ({tests}). {advice}"
