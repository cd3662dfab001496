"""Transferability scores: how well a frozen backbone suits a labelled target task, measured without fine-tuning.

Each score takes the target labels (strings or ints) and either the backbone's features (N x D) or the
probabilities a source classifier gives the target samples (N x Z). For every score, higher is better.

Comparing backbones with different embedding sizes:

- LogME is the log evidence per sample, averaged over classes. The prior over all D weights is part of the
  evidence, so the score takes the dimension into account by construction.
- LEEP and NCE see the target data only through a source classifier's outputs, so D never enters.
- kNN and linear-probe scores are accuracies, on the same 0..1 scale whatever D is.
- The plain H-score grows with D, even for pure noise (roughly (C - 1) * D / N for C classes). To compare
  backbones of different sizes, use the Ledoit-Wolf shrunk variant `hscore(..., shrinkage=True)`
  ("hscore_shrinkage" in `SCORES`).

`SCORES` lists every score with what it needs and whether it can be compared across embedding sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Literal

import numpy as np


def _check_matrix(x: np.ndarray, name: str) -> np.ndarray:
    try:
        x = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{name} must be a numeric array: {err}") from None
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise ValueError(f"{name} must be a non-empty 2-D array (samples x dims), got shape {x.shape}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise ValueError(
            f"{name} contain NaN or inf in {int(bad.sum())} of {len(x)} rows (first: row {int(np.argmax(bad))})"
        )
    return x


def _encode_labels(labels: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    """Map labels of any type to codes 0..C-1; return the codes and C."""
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}")
    if len(labels) != n:
        raise ValueError(f"got {n} samples but {len(labels)} labels; they must match one to one")
    classes, codes = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"need at least 2 classes, got {len(classes)}: {classes.tolist()!r}")
    return codes.reshape(-1), len(classes)


def _prepare(features: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    f = _check_matrix(features, "features")
    y, n_classes = _encode_labels(labels, len(f))
    return f, y, n_classes


# ---------------------------------------------------------------- LogME

_LOGME_TOL = 1e-5  # relative change of alpha / beta at which the fixed-point iteration stops
_LOGME_MAX_ITER = 1_000  # each step costs O(rank); from a good start it takes a few dozen
_LOGME_GRID_PER_DECADE = 4  # starting points for alpha / beta scanned per factor of 10


def _fit_stats(lam: float, sigma: np.ndarray, x2: np.ndarray, res0: float) -> tuple[float, float, float]:
    """gamma, |m|^2 and |y - F m|^2 of the posterior mean m at lam = alpha / beta, in the SVD basis.

    sigma: the non-zero squared singular values; x2: the squared projections of the target on the matching left
    singular vectors; res0: the part of |y|^2 outside their span. Written so that no term overflows or cancels
    for extreme lam.
    """
    explained = sigma / (sigma + lam)
    gamma = float(np.sum(explained))
    m2 = float(np.sum(x2 * explained / (sigma + lam)))
    res2 = float(np.sum(x2 * (lam / (sigma + lam)) ** 2)) + res0
    return gamma, m2, res2


def _log_evidence(lam: float, sigma: np.ndarray, x2: np.ndarray, res0: float, n: int, d: int) -> float:
    """Log evidence at alpha / beta = lam, with beta at its best for that ratio: N / (|y - F m|^2 + lam |m|^2).

    At a fixed point of the iteration this beta is the iteration's own.
    """
    _, m2, res2 = _fit_stats(lam, sigma, x2, res0)
    beta = n / (res2 + lam * m2)
    alpha = lam * beta
    # log|alpha I + beta F^T F|: each of the D - rank zero singular values contributes log(alpha).
    logdet = float(np.sum(np.log(alpha + beta * sigma))) + (d - len(sigma)) * np.log(alpha)
    fit = d * np.log(alpha) + n * np.log(beta) - logdet - beta * res2 - alpha * m2
    return (fit - n * np.log(2 * np.pi)) / 2


def logme(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME (You et al., ICML 2021): the maximised log evidence per sample, averaged over one-hot class targets.

    One SVD of the features (an eigendecomposition of F^T F when N > D), then for each class the fixed-point
    iteration alpha = gamma / |m|^2, beta = (N - gamma) / |y - F m|^2 of the official `LogME.py`. Two changes
    make the value the evidence's global maximum, independent of the features' scale: the log-determinant
    counts the D - rank zero singular values (the official fixed-point code drops them when N < D), and the
    iteration starts from the best of a log-spaced scan of alpha / beta rather than from alpha = beta = 1,
    because the evidence can have several local maxima, notably when N < D.
    """
    f, y, n_classes = _prepare(features, labels)
    n, d = f.shape
    if n > d:
        sigma, v = np.linalg.eigh(f.T @ f)
        keep = sigma > max(sigma.max(), 0.0) * 1e-10
        sigma = sigma[keep]
        u = f @ v[:, keep] / np.sqrt(sigma)
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
        sigma = s**2
        keep = sigma > sigma.max() * 1e-10
        sigma, u = sigma[keep], u[:, keep]
    if len(sigma) == 0:
        raise ValueError("features are all zero; LogME needs at least one non-zero feature")

    # Beyond these bounds on alpha / beta the evidence no longer changes. An optimum on the boundary (features
    # that explain nothing of a target, or all of it) makes the iteration drift towards one of them.
    lo, hi = 1e-10 * sigma.min(), 1e10 * sigma.max()
    grid = np.logspace(np.log10(lo), np.log10(hi), int(np.log10(hi / lo) * _LOGME_GRID_PER_DECADE) + 1)
    tiny = np.finfo(np.float64).tiny
    evidences = []
    for k in range(n_classes):
        target = (y == k).astype(np.float64)
        x2 = (u.T @ target) ** 2
        res0 = max(float(target @ target - x2.sum()), 0.0)
        scan = [_log_evidence(lam, sigma, x2, res0, n, d) for lam in grid]
        lam = float(grid[int(np.argmax(scan))])
        for _ in range(_LOGME_MAX_ITER):
            gamma, m2, res2 = _fit_stats(lam, sigma, x2, res0)
            # alpha = gamma / |m|^2 and beta = (N - gamma) / |y - F m|^2 only matter through their ratio.
            new_lam = float(np.clip(gamma * res2 / max((n - gamma) * m2, tiny), lo, hi))
            converged = abs(new_lam - lam) <= _LOGME_TOL * lam
            lam = new_lam
            if converged:
                break
        evidences.append(max(_log_evidence(lam, sigma, x2, res0, n, d), max(scan)) / n)
    return float(np.mean(evidences))


def logme_slow(features: np.ndarray, labels: np.ndarray) -> float:
    """LogME straight from the definition, to test `logme`: no SVD and no fixed point.

    The log evidence of Bayesian linear regression, with a determinant and a solve per step, is maximised over
    log alpha and log beta: a coarse grid, then Nelder-Mead from the grid's best point, which can settle on a
    lower local maximum when two lie close. It is computed through the D x D posterior precision when N > D, and
    as the N x N Gaussian marginal likelihood otherwise, the form that stays well conditioned there. Slow, and
    meant for small, roughly unit-scale features.
    """
    from scipy.optimize import minimize

    f, y, n_classes = _prepare(features, labels)
    n, d = f.shape
    ftf, gram = f.T @ f, f @ f.T
    log_mean_square = np.log(np.mean(f**2))

    def neg_evidence(log_params: np.ndarray, target: np.ndarray) -> float:
        alpha, beta = np.exp(log_params)
        if n > d:  # posterior precision A = alpha I + beta F^T F, posterior mean m = beta A^-1 F^T y
            a = alpha * np.eye(d) + beta * ftf
            m = beta * np.linalg.solve(a, f.T @ target)
            residual = np.sum((target - f @ m) ** 2)
            fit = d * np.log(alpha) + n * np.log(beta) - np.linalg.slogdet(a)[1] - beta * residual - alpha * m @ m
            return -(fit - n * np.log(2 * np.pi)) / (2 * n)
        cov = np.eye(n) / beta + gram / alpha  # y ~ N(0, cov) once w ~ N(0, I / alpha) is integrated out
        logdet = np.linalg.slogdet(cov)[1]
        return (n * np.log(2 * np.pi) + logdet + target @ np.linalg.solve(cov, target)) / (2 * n)

    grid = [(log_mean_square + a, b) for a in np.arange(-14.0, 41.0, 2.0) for b in np.arange(-5.0, 36.0)]
    bounds = [(log_mean_square - 20, log_mean_square + 45), (-10, 40)]
    evidences = []
    for k in range(n_classes):
        target = (y == k).astype(np.float64)
        start = min(grid, key=lambda point: neg_evidence(np.array(point), target))
        options = {"xatol": 1e-6, "fatol": 1e-10}
        result = minimize(neg_evidence, start, args=(target,), method="Nelder-Mead", bounds=bounds, options=options)
        evidences.append(-result.fun)
    return float(np.mean(evidences))


# ---------------------------------------------------------------- scores from a source classifier


def leep(source_probs: np.ndarray, labels: np.ndarray) -> float:
    """LEEP (Nguyen et al., 2020): mean log of the expected empirical prediction sum_z P(y_i | z) theta(x_i)_z.

    `source_probs` (N x Z) are the source classifier's probabilities for the target samples; P(y, z) is their
    empirical joint with the target labels.
    """
    p = _check_matrix(source_probs, "source_probs")
    if (p < 0).any() or not np.allclose(p.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("source_probs must be probabilities: non-negative rows that sum to 1 (softmax the logits)")
    y, n_classes = _encode_labels(labels, len(p))
    joint = np.zeros((n_classes, p.shape[1]))
    np.add.at(joint, y, p)
    joint /= len(p)
    p_z = joint.sum(axis=0)
    p_y_given_z = np.divide(joint, p_z, out=np.zeros_like(joint), where=p_z > 0)
    expected = np.sum(p * p_y_given_z[y], axis=1)
    return float(np.mean(np.log(expected)))


def nce(source_labels: np.ndarray, labels: np.ndarray) -> float:
    """NCE (Tran et al., 2019): the negative conditional entropy -H(Y | Z) of target labels given source labels.

    `source_labels` are the source classifier's hard predictions (N,), or its probabilities (N x Z), in which
    case the argmax is taken.
    """
    z = np.asarray(source_labels)
    if z.ndim == 2:
        z = _check_matrix(z, "source_labels").argmax(axis=1)
    elif z.ndim != 1:
        raise ValueError(f"source_labels must be 1-D labels or 2-D probabilities, got shape {z.shape}")
    y, n_classes = _encode_labels(labels, len(z))
    sources, z = np.unique(z, return_inverse=True)
    joint = np.zeros((n_classes, len(sources)))
    np.add.at(joint, (y, z.reshape(-1)), 1.0)
    joint /= len(y)
    p_y_given_z = joint / joint.sum(axis=0)
    seen = joint > 0
    return float(np.sum(joint[seen] * np.log(p_y_given_z[seen])))


# ---------------------------------------------------------------- scores from features


def hscore(features: np.ndarray, labels: np.ndarray, shrinkage: bool = False) -> float:
    """H-score (Bao et al., 2019): tr(cov(f)^-1 cov(E[f | y])), the between-class share of the feature variance.

    With `shrinkage=True`, the regularised H-score of Ibrahim et al. (2022): cov(f) is Ledoit-Wolf shrunk with
    coefficient a and the between-class covariance of the class means is scaled by (1 - a). Use it to compare
    backbones of different embedding sizes; the plain score grows with the dimension.
    """
    f, y, n_classes = _prepare(features, labels)
    n, d = f.shape
    f = f - f.mean(axis=0)
    counts = np.bincount(y, minlength=n_classes)
    means = np.zeros((n_classes, d))
    np.add.at(means, y, f)
    means /= counts[:, None]
    if shrinkage:
        return _hscore_shrunk(f, means, counts / n)
    between = (means.T * (counts / n)) @ means  # sum_c (n_c / N) mu_c mu_c^T, features centred
    cov = f.T @ f / n
    return float(np.trace(np.linalg.pinv(cov, hermitian=True) @ between))


def _hscore_shrunk(f: np.ndarray, means: np.ndarray, weights: np.ndarray) -> float:
    """(1 - a) tr(C_a^-1 B) for centred features f, C_a their Ledoit-Wolf shrunk covariance, B = sum_c w_c m_c m_c^T.

    The same numbers as `sklearn.covariance.ledoit_wolf(f, assume_centered=True)`, about 15x faster at N = 1,347,
    D = 1,280: its O(N D^2) second pass over f**2 reduces to the rows' squared norms, and the trace is
    sum_c w_c m_c^T C_a^-1 m_c, one Cholesky solve for the C class means instead of a D x D pseudo-inverse.
    """
    from scipy.linalg import LinAlgError, cho_factor, cho_solve

    n, d = f.shape
    cov = f.T @ f / n
    mu = np.trace(cov) / d
    cov_sq = float(np.sum(cov**2))
    delta = (cov_sq - 2 * mu * np.trace(cov) + d * mu**2) / d  # |C - mu I|_F^2 / D
    beta = min((float(np.sum(np.sum(f**2, axis=1) ** 2)) / n - cov_sq) / (n * d), delta)
    coef = 0.0 if beta <= 0 else beta / delta
    shrunk = (1.0 - coef) * cov
    shrunk[np.diag_indices(d)] += coef * mu
    try:
        solved = cho_solve(cho_factor(shrunk), means.T)
    except LinAlgError:  # no shrinkage and a singular covariance
        solved = np.linalg.pinv(shrunk, hermitian=True) @ means.T
    return float((1.0 - coef) * np.sum(weights * np.sum(means.T * solved, axis=0)))


def _stratified_folds(y: np.ndarray, folds: int, seed: int):
    from sklearn.model_selection import StratifiedKFold

    smallest = int(np.bincount(y).min())
    if folds < 2:
        raise ValueError(f"folds must be at least 2, got {folds}")
    if smallest < folds:
        raise ValueError(
            f"{folds}-fold cross-validation needs at least {folds} samples per class; "
            f"the smallest class has {smallest} (pass a smaller folds=)"
        )
    return StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)


def knn_accuracy(features: np.ndarray, labels: np.ndarray, k: int = 5, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a k-nearest-neighbour classifier with cosine distance."""
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    f, y, _ = _prepare(features, labels)
    cv = _stratified_folds(y, folds, seed)
    smallest_train = min(len(train) for train, _ in cv.split(f, y))
    if not 1 <= k <= smallest_train:
        raise ValueError(f"k must be between 1 and {smallest_train} (the smallest training fold), got {k}")
    # On unit vectors, Euclidean distance ranks neighbours exactly as cosine distance does.
    f = f / np.maximum(np.linalg.norm(f, axis=1, keepdims=True), 1e-12)
    return float(cross_val_score(KNeighborsClassifier(n_neighbors=k), f, y, cv=cv).mean())


def linear_probe_accuracy(features: np.ndarray, labels: np.ndarray, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of logistic regression on standardised features: the costly reference."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    f, y, _ = _prepare(features, labels)
    cv = _stratified_folds(y, folds, seed)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    return float(cross_val_score(probe, f, y, cv=cv).mean())


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class ScoreSpec:
    """A transferability score: `fn(inputs, labels) -> float`, where the inputs are what `needs` names."""

    fn: Callable[..., float]
    needs: Literal["features", "source_probs"]
    higher_is_better: bool
    comparable_across_dims: bool


SCORES: dict[str, ScoreSpec] = {
    "logme": ScoreSpec(logme, "features", higher_is_better=True, comparable_across_dims=True),
    "leep": ScoreSpec(leep, "source_probs", higher_is_better=True, comparable_across_dims=True),
    "nce": ScoreSpec(nce, "source_probs", higher_is_better=True, comparable_across_dims=True),
    "hscore": ScoreSpec(hscore, "features", higher_is_better=True, comparable_across_dims=False),
    "hscore_shrinkage": ScoreSpec(
        partial(hscore, shrinkage=True), "features", higher_is_better=True, comparable_across_dims=True
    ),
    "knn": ScoreSpec(knn_accuracy, "features", higher_is_better=True, comparable_across_dims=True),
    "linear_probe": ScoreSpec(linear_probe_accuracy, "features", higher_is_better=True, comparable_across_dims=True),
}
