"""What heads share: the scikit-learn estimator contract on top of a small torch module.

`__init__` only stores parameters; `fit` sets attributes ending in `_` (`classes_`, `mean_`, `scale_`, `module_`);
`predict`, `predict_proba` and `score` follow scikit-learn, so a head works inside a `Pipeline` or `GridSearchCV`.
Feature scaling lives inside the head (saved with it), so a head takes raw backbone features: `standard` (z-scores),
`l2` (each row to unit length, then z-scores) or `none`. Heads whose settings are "auto" choose them by
cross-validation on the training features in `_select` (see `headstart.heads.tuning`) before the final fit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

SCALINGS = ("standard", "l2", "none")
LOGIT_BLOCK = 512  # sparse rows a head cannot score sparse are made dense this many at a time


class Standardize(nn.Module):
    """`(x / |x|^l2 - mean) / scale`: `l2` is 1.0 to bring each row to unit length first, 0.0 to leave it; written
    without a branch, so it exports to ONNX as it is."""

    def __init__(self, mean: torch.Tensor, scale: torch.Tensor, l2: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)
        self.register_buffer("l2", torch.tensor(float(l2)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        norm = x.norm(dim=1, keepdim=True).clamp_min(1e-12)
        x = x / (self.l2 * (norm - 1.0) + 1.0)
        return (x - self.mean) / self.scale


# features of several parts side by side (a sentence encoder's beside TF-IDF rows): each part divided by its rows'
# mean length, so that no part outweighs the others by its units alone. Asked for by name, with the parts' widths.
PART_SCALING = "parts"


def scaling_stats(
    x: np.ndarray, scaling: str, parts: Sequence[int] | None = None
) -> tuple[float, np.ndarray, np.ndarray]:
    """(l2, mean, scale) of `scaling` fitted on `x`; `apply_scaling` uses them. `parts`: the widths of the parts
    side by side in `x`, for PART_SCALING."""
    if scaling == PART_SCALING:
        if not parts or sum(parts) != x.shape[1] or min(parts) < 1:
            raise ValueError(f"scaling {PART_SCALING!r} needs the parts' widths, summing to {x.shape[1]}: {parts}")
        edges = np.cumsum([0, *parts])
        lengths = [float(_row_lengths(x[:, a:b]).mean()) for a, b in zip(edges[:-1], edges[1:])]
        scale = np.concatenate([np.full(w, n if n > 1e-8 else 1.0) for w, n in zip(parts, lengths)])
        return 0.0, np.zeros(x.shape[1], np.float32), scale.astype(np.float32)
    if scaling not in SCALINGS:
        raise ValueError(f"unknown scaling {scaling!r}; choose one of: {', '.join(SCALINGS)}, auto")
    l2 = 1.0 if scaling == "l2" else 0.0
    if scaling == "none":
        return l2, np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
    x = x.toarray() if issparse(x) else x  # centring makes the rows dense anyway
    x = _unit_rows(x) if l2 else x
    mean, scale = x.mean(0), x.std(0)
    scale[scale < 1e-8] = 1.0
    return l2, mean.astype(np.float32), scale.astype(np.float32)


def apply_scaling(x: Any, l2: float, mean: np.ndarray, scale: np.ndarray) -> Any:
    """The scaled rows: a float32 array, or sparse rows where `x` is sparse and the scaling only divides columns."""
    if issparse(x) and keeps_sparse(l2, mean):
        from scipy.sparse import csr_matrix

        if np.all(scale == 1.0):  # "none": the rows as they are
            return csr_matrix(x, dtype=np.float32)
        return csr_matrix(x.multiply(1.0 / scale[None, :]), dtype=np.float32)
    x = x.toarray() if issparse(x) else x
    return (((_unit_rows(x) if l2 else x) - mean) / scale).astype(np.float32)


def keeps_sparse(l2: float, mean: np.ndarray) -> bool:
    """Whether a scaling keeps sparse rows sparse: it divides each column (no row lengths, no centring)."""
    return not l2 and not np.any(mean)


def issparse(x: Any) -> bool:
    from scipy.sparse import issparse as _issparse

    return bool(_issparse(x))


def _row_lengths(x: Any) -> np.ndarray:
    if issparse(x):
        return np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    return np.linalg.norm(x, axis=1)


@contextmanager
def one_thread() -> Iterator[None]:
    """Head fits run on one thread (torch and BLAS): their matrices are small, and threads fighting over 2 busy
    cores made an MLP head's fit 60x slower (95 s against 1.6 s for 200 digits under load)."""
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1, user_api="blas"):
            yield
    finally:
        torch.set_num_threads(before)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


class TorchHead(ClassifierMixin, BaseEstimator):
    """Subclasses define `_build(dim, n_classes)` and `_train(module, x, y, weights, generator, groups)`, and may
    define `_select` to choose settings by cross-validation (they set `chosen_`, and `scaling_` when they choose the
    scaling)."""

    kind: str = ""
    sparse_rows: bool = False  # whether `_select` and `_train` take sparse rows (for scalings that keep them sparse)

    def fit(self, X: Any, y: Any, groups: Any = None) -> TorchHead:
        """Fit on features `X` and labels `y`. `groups` (optional, one id per row): rows that are one item and its
        augmented copies share an id, and the cross-validation that chooses "auto" settings keeps them together.
        `X` may be scipy sparse rows (TF-IDF): kept sparse where the head and its scaling allow, else made dense."""
        for name in [a for a in vars(self) if a.endswith("_") and not a.startswith("_")]:
            delattr(self, name)  # a refit starts clean: nothing of an earlier fit (e.g. its cv_results_) lingers
        x, y = validate_data(self, X, y, dtype=np.float32, accept_sparse="csr")  # 2-D, finite, rows = labels
        if issparse(x) and not (self.sparse_rows and getattr(self, "scaling", None) in ("none", PART_SCALING)):
            x = x.toarray()
        check_classification_targets(y)  # class labels, not a continuous target
        if groups is not None:
            groups = np.asarray(groups)
            if groups.shape != (len(x),):
                raise ValueError(f"groups must give one id per row: {groups.shape[0]} ids for {len(x)} rows")
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes to fit a head, got one class: {list(self.classes_)}")
        self.chosen_: dict[str, Any] = {}
        with one_thread():
            self._fit_scaled(x, y_idx, groups)
        return self

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True  # scipy sparse rows are taken (kept sparse or made dense, see `fit`)
        return tags

    def _fit_scaled(self, x: np.ndarray, y_idx: np.ndarray, groups: np.ndarray | None = None) -> None:
        self._select(x, y_idx, groups)
        scaling = getattr(self, "scaling_", None) or getattr(self, "scaling", "standard")
        self.l2_, self.mean_, self.scale_ = scaling_stats(x, scaling, getattr(self, "parts", None))
        generator = torch.Generator().manual_seed(int(getattr(self, "random_state", 0) or 0))
        torch.manual_seed(int(getattr(self, "random_state", 0) or 0))
        core = self._build(x.shape[1], len(self.classes_))
        weights = torch.as_tensor(self._class_weights(y_idx), dtype=torch.float32)
        xs = apply_scaling(x, self.l2_, self.mean_, self.scale_)
        xs = xs if issparse(xs) else torch.as_tensor(xs)  # sparse rows only reach heads with `sparse_rows`
        self._train(core, xs, torch.as_tensor(y_idx), weights, generator, groups)
        core.eval()
        scale = Standardize(torch.as_tensor(self.mean_), torch.as_tensor(self.scale_), self.l2_)
        self.module_ = nn.Sequential(scale, core)

    def _select(self, x: np.ndarray, y_idx: np.ndarray, groups: np.ndarray | None) -> None:
        """Choose "auto" settings by cross-validation on (x, y), folds keeping `groups` whole; by default there is
        nothing to choose."""

    def _class_weights(self, y_idx: np.ndarray) -> np.ndarray:
        n_classes = len(self.classes_)
        cw = getattr(self, "class_weight", None)
        if cw is None:
            return np.ones(n_classes)
        if cw == "balanced":
            counts = np.bincount(y_idx, minlength=n_classes)
            return len(y_idx) / (n_classes * np.maximum(counts, 1))
        if isinstance(cw, dict):
            return np.array([float(cw.get(c, 1.0)) for c in self.classes_])
        raise ValueError(f"class_weight must be None, 'balanced' or a dict, got {cw!r}")

    def logits(self, X: Any) -> np.ndarray:
        """(items, classes) scores before the softmax, one column per class in `classes_`."""
        check_is_fitted(self, "module_")
        x = validate_data(self, X, reset=False, dtype=np.float32, accept_sparse="csr")  # as many features as `fit`
        with torch.inference_mode():
            if not issparse(x):
                return self.module_(torch.as_tensor(x)).numpy()
            scale, core = self.module_[0], self.module_[1]
            if isinstance(core, nn.Linear) and float(scale.l2) == 0.0:  # ((x - m) / s) W' + b = x (W / s)' + b - ...
                w = (core.weight / scale.scale).numpy()
                bias = (core.bias - (scale.mean / scale.scale) @ core.weight.T).numpy()
                return np.asarray(x @ w.T, dtype=np.float32) + bias
            # other sparse rows: made dense a block at a time, never all at once
            blocks = range(0, x.shape[0], LOGIT_BLOCK)
            out = [self.module_(torch.as_tensor(x[i : i + LOGIT_BLOCK].toarray())).numpy() for i in blocks]
            return np.concatenate(out) if out else np.zeros((0, len(self.classes_)), np.float32)

    def decision_function(self, X: Any) -> np.ndarray:
        """scikit-learn's convention: the logits, or for two classes one score per item, > 0 for `classes_[1]`."""
        logits = self.logits(X)
        return logits[:, 1] - logits[:, 0] if logits.shape[1] == 2 else logits

    def predict_proba(self, X: Any) -> np.ndarray:
        logits = self.logits(X)
        logits = logits - logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        best = self.logits(X).argmax(1)  # checks it is fitted before `classes_` is read
        return self.classes_[best]

    def fitted_params(self) -> dict[str, Any]:
        """`get_params()` with each "auto" setting replaced by the value chosen in `fit` (what a bundle saves)."""
        params = self.get_params()
        return {k: getattr(self, f"{k}_", v) if v == "auto" else v for k, v in params.items()}

    def state_tensors(self) -> dict[str, torch.Tensor]:
        check_is_fitted(self, "module_")
        return {k: v.detach().contiguous() for k, v in self.module_.state_dict().items()}

    @classmethod
    def from_state(cls, params: dict[str, Any], classes: list[str], tensors: dict[str, torch.Tensor]) -> TorchHead:
        head = cls(**params)
        head.classes_ = np.asarray(classes)
        dim = int(tensors["0.mean"].shape[0])
        head.n_features_in_ = dim
        head.module_ = nn.Sequential(Standardize(torch.zeros(dim), torch.ones(dim)), head._build(dim, len(classes)))
        tensors = {"0.l2": torch.tensor(0.0), **tensors}  # heads saved before L2 scaling existed standardise only
        head.module_.load_state_dict(tensors)
        head.module_.eval()
        head.mean_, head.scale_ = tensors["0.mean"].numpy(), tensors["0.scale"].numpy()
        head.l2_ = float(tensors["0.l2"])
        return head

    def _build(self, dim: int, n_classes: int) -> nn.Module:
        raise NotImplementedError

    def _train(
        self,
        core: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        generator: torch.Generator,
        groups: np.ndarray | None = None,
    ) -> None:
        """Train `core` on the scaled rows; `groups` (one id per row, or None) for any split it makes of them."""
        raise NotImplementedError
