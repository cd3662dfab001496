"""The softmax / linear head: softmax(W f(x) + b).

Fitted with scikit-learn's multinomial L-BFGS solver (a well-kept solver; no reason to write another), then held as
a torch `nn.Linear`, so the same head saves to safetensors, exports to ONNX and fine-tunes with the backbone. `C`
is scikit-learn's inverse L2 strength. By default (`C="auto"`, `scaling="auto"`) both are chosen by stratified
cross-validation on the training features, warm-starting along the path of C; scikit-learn's own default
(`LogisticRegression()` on unscaled features, C=1) is one of the candidates, so the head is not worse than it
beyond the noise of the cross-validation. With fewer items than features (the few-label case), the cross-validation
fits run on the items' coordinates in their own row space (`row_space`): the same solutions, found 3x faster on
digits at 8 per class (1,280 features). The final fit stays on the features: one fit does not repay the basis.
`scaling="parts"` with `parts=[w1, w2, ...]` (features of several parts side by side, e.g. a sentence encoder's
beside TF-IDF rows) divides each part by its rows' mean length; it is asked for by name, never chosen by "auto".
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from headstart.heads.base import PART_SCALING, SCALINGS, TorchHead, apply_scaling, issparse, scaling_stats
from headstart.heads.tuning import Score, best, cross_validate, described, folds, key, remembered_scores, sample_for_cv

C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
ROW_SPACE_ITEMS = 1000  # above this the basis costs more than it saves
FALLBACK = {"C": 1.0, "scaling": "none"}  # scikit-learn's default, where there is too little data to choose


class LinearHead(TorchHead):
    kind = "linear"
    sparse_rows = True  # TF-IDF rows stay sparse from the vectorizer to scikit-learn's solver

    def __init__(
        self,
        C: float | str = "auto",
        scaling: str = "auto",
        class_weight: str | dict | None = None,
        max_iter: int = 1000,
        tol: float = 1e-4,
        cv: int = 5,
        random_state: int = 0,
        parts: list[int] | None = None,
    ) -> None:
        self.C = C
        self.scaling = scaling
        self.parts = parts  # the widths of parts side by side, for scaling="parts"
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.tol = tol
        self.cv = cv
        self.random_state = random_state

    def _build(self, dim: int, n_classes: int) -> nn.Module:
        return nn.Linear(dim, n_classes)

    def _select(self, x: np.ndarray, y_idx: np.ndarray, groups: np.ndarray | None = None) -> None:
        if self.scaling != "auto" and self.scaling not in (*SCALINGS, PART_SCALING):
            raise ValueError(f"unknown scaling {self.scaling!r}; choose one of: {', '.join(SCALINGS)}, auto")
        if self.C != "auto" and not (isinstance(self.C, (int, float)) and self.C > 0):
            raise ValueError(f"C must be a positive number or 'auto', not {self.C!r}")
        scalings = list(SCALINGS) if self.scaling == "auto" else [self.scaling]
        cs = list(C_GRID) if self.C == "auto" else [float(self.C)]
        self.C_, self.scaling_ = (cs[0], scalings[0]) if len(cs) == len(scalings) == 1 else (None, None)
        if self.C_ is not None:
            return
        keep = sample_for_cv(y_idx, int(self.random_state), groups=groups)
        xs, ys = x[keep], y_idx[keep]
        splits = folds(ys, self.cv, int(self.random_state), None if groups is None else groups[keep])
        if not splits:
            self.C_ = FALLBACK["C"] if self.C == "auto" else float(self.C)
            self.scaling_ = FALLBACK["scaling"] if self.scaling == "auto" else self.scaling
            self.chosen_ = {"C": self.C_, "scaling": self.scaling_, "by": "too few items per class to cross-validate"}
            return
        weights = self._class_weights(ys)

        def score_grid() -> list[Score]:
            scores = []
            for scaling in scalings:

                def path(tr: np.ndarray, te: np.ndarray, scaling: str = scaling) -> dict[str, np.ndarray]:
                    stats = scaling_stats(xs[tr], scaling, self.parts)
                    xtr, xte = apply_scaling(xs[tr], *stats), apply_scaling(xs[te], *stats)
                    return self._path(xtr, ys[tr], xte, cs, scaling, weights)

                grid = [{"C": c, "scaling": scaling} for c in cs]
                scores += cross_validate(grid, None, splits, ys, path=path)
            return scores

        scores = remembered_scores(self, (xs, ys, None if groups is None else groups[keep]), score_grid)
        winner = best(scores, default=FALLBACK if self.C == self.scaling == "auto" else None)
        self.C_, self.scaling_ = float(winner.params["C"]), str(winner.params["scaling"])
        self.chosen_ = {
            "C": self.C_,
            "scaling": self.scaling_,
            "by": described(splits, len(ys), None if groups is None else groups[keep]),
            "cv_accuracy": winner.accuracy,
            "cv_std": winner.spread,
        }
        self.cv_results_ = [s.to_json() for s in scores]

    def _path(
        self, xtr: np.ndarray, ytr: np.ndarray, xte: np.ndarray, cs: list[float], scaling: str, weights: np.ndarray
    ) -> dict[str, np.ndarray]:
        """Class probabilities on `xte` for every C, fitting from the strongest regularisation up, each fit starting
        from the previous one's solution (cheap: the solutions move little between neighbouring Cs)."""
        solver = self._solver(cs[0], warm_start=True)
        xtr = sparse_if_mostly_zero(xtr)  # once for the whole path of C
        # sparse rows (mostly zeros): a step costs the non-zeros, less than building any basis
        if not issparse(xtr) and (basis := row_space(xtr)) is not None:
            xtr, xte = xtr @ basis.T, xte @ basis.T
        out = {}
        n_classes = len(self.classes_)
        for c in cs:
            solver.set_params(C=c)
            self._fit_solver(solver, xtr, ytr, weights)
            proba = np.zeros((xte.shape[0], n_classes))
            proba[:, solver.classes_] = solver.predict_proba(xte)
            out[key({"C": c, "scaling": scaling})] = proba
        return out

    def _solver(self, c: float, *, warm_start: bool = False) -> Any:
        from sklearn.linear_model import LogisticRegression

        return LogisticRegression(C=c, max_iter=self.max_iter, tol=self.tol, warm_start=warm_start)

    def _fit_solver(self, solver: Any, x: np.ndarray, y: np.ndarray, weights: np.ndarray) -> None:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():  # on one BLAS thread: see `one_thread` in heads/base.py
            warnings.simplefilter("ignore", ConvergenceWarning)
            solver.fit(sparse_if_mostly_zero(x), y, sample_weight=weights[y])

    def _train(
        self,
        core: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        generator: torch.Generator,
        groups: np.ndarray | None = None,
    ) -> None:
        solver = self._solver(float(self.C_))
        self._fit_solver(solver, x if issparse(x) else x.numpy(), y.numpy(), weights.numpy())
        self.n_iter_ = int(np.max(solver.n_iter_))  # L-BFGS iterations of the final fit
        coef = np.zeros((len(self.classes_), x.shape[1]))
        intercept = np.zeros(len(self.classes_))
        if solver.coef_.shape[0] == 1:  # scikit-learn keeps one row for two classes: logit(1) - logit(0)
            coef[solver.classes_] = np.r_[-0.5 * solver.coef_, 0.5 * solver.coef_]
            intercept[solver.classes_] = np.r_[-0.5 * solver.intercept_, 0.5 * solver.intercept_]
        else:
            coef[solver.classes_], intercept[solver.classes_] = solver.coef_, solver.intercept_
        with torch.no_grad():
            core.weight.copy_(torch.as_tensor(coef))
            core.bias.copy_(torch.as_tensor(intercept))


SPARSE_FROM = 1_000_000  # cells; smaller matrices are cheap either way
SPARSE_BELOW = 0.1  # the fraction of non-zero cells under which the solver gets compressed rows


def sparse_if_mostly_zero(x: Any) -> Any:
    """`x` as compressed sparse rows when it is large and mostly zeros (TF-IDF rows: 1.5% non-zero on BBC News), for
    the solver only: scikit-learn's L-BFGS then costs the non-zeros per step instead of every cell, the same
    iterations to the same solution (benchmarks/sparse_solver.py). Anything else is returned as it is."""
    if not isinstance(x, np.ndarray) or x.size < SPARSE_FROM or np.count_nonzero(x) >= SPARSE_BELOW * x.size:
        return x
    from scipy.sparse import csr_matrix

    return csr_matrix(x)


def row_space(x: np.ndarray) -> np.ndarray | None:
    """An orthonormal basis (rank, features) of the span of `x`'s rows when it has at most half as many rows as
    columns (and at most ROW_SPACE_ITEMS), else None. An L2-penalised linear model's weights lie in that span (the
    loss's gradient is `x.T @ residuals`, and any part of the weights outside it only adds to the penalty), so fitting
    on the coordinates `x @ basis.T` and mapping the weights back with `@ basis` gives the same model, each solver
    step costing rank instead of feature count. The intercept is not penalised and is unchanged. The basis comes
    from the eigenvectors of the rows' Gram matrix (one matrix product, 10-15x faster than an SVD of `x`)."""
    n, d = x.shape
    if n > ROW_SPACE_ITEMS or 2 * n > d:
        return None
    x = np.asarray(x, np.float64)
    eigenvalues, vectors = np.linalg.eigh(x @ x.T)
    keep = eigenvalues > max(eigenvalues[-1], 0.0) * 1e-10
    if not keep.any():
        return None
    return (vectors[:, keep] / np.sqrt(eigenvalues[keep])).T @ x
