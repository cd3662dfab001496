"""What heads share: the scikit-learn estimator contract on top of a small torch module.

`__init__` only stores parameters; `fit` sets attributes ending in `_` (`classes_`, `mean_`, `scale_`, `module_`);
`predict`, `predict_proba` and `score` follow scikit-learn, so a head works inside a `Pipeline` or `GridSearchCV`.
Features are standardised inside the head (mean/scale saved with it), so a head takes raw backbone features.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.validation import check_is_fitted
from torch import nn


class Standardize(nn.Module):
    def __init__(self, mean: torch.Tensor, scale: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("scale", scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.scale


class TorchHead(ClassifierMixin, BaseEstimator):
    """Subclasses define `_build(dim, n_classes)` and `_train(module, x, y, weights)`."""

    kind: str = ""

    def fit(self, X: Any, y: Any) -> TorchHead:
        x = _as_features(X)
        y = np.asarray(y)
        if len(x) != len(y):
            raise ValueError(f"{len(x)} feature rows but {len(y)} labels")
        self.classes_, y_idx = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need at least 2 classes to fit a head, got {list(self.classes_)}")
        self.n_features_in_ = x.shape[1]
        mean, scale = x.mean(0), x.std(0)
        scale[scale < 1e-8] = 1.0
        self.mean_, self.scale_ = mean.astype(np.float32), scale.astype(np.float32)
        generator = torch.Generator().manual_seed(int(getattr(self, "random_state", 0) or 0))
        torch.manual_seed(int(getattr(self, "random_state", 0) or 0))
        core = self._build(x.shape[1], len(self.classes_))
        weights = torch.as_tensor(self._class_weights(y_idx), dtype=torch.float32)
        xs = torch.as_tensor((x - self.mean_) / self.scale_, dtype=torch.float32)
        self._train(core, xs, torch.as_tensor(y_idx), weights, generator)
        core.eval()
        self.module_ = nn.Sequential(Standardize(torch.as_tensor(self.mean_), torch.as_tensor(self.scale_)), core)
        return self

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

    def decision_function(self, X: Any) -> np.ndarray:
        check_is_fitted(self, "module_")
        x = torch.as_tensor(_as_features(X), dtype=torch.float32)
        if x.shape[1] != self.n_features_in_:
            raise ValueError(f"head was fitted on {self.n_features_in_} features, got {x.shape[1]}")
        with torch.inference_mode():
            return self.module_(x).numpy()

    def predict_proba(self, X: Any) -> np.ndarray:
        logits = self.decision_function(X)
        logits = logits - logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(1)]

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
        head.module_.load_state_dict(tensors)
        head.module_.eval()
        head.mean_, head.scale_ = tensors["0.mean"].numpy(), tensors["0.scale"].numpy()
        return head

    def _build(self, dim: int, n_classes: int) -> nn.Module:
        raise NotImplementedError

    def _train(
        self, core: nn.Module, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, generator: torch.Generator
    ) -> None:
        raise NotImplementedError


def _as_features(X: Any) -> np.ndarray:
    x = np.asarray(X, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f"features must be a 2-D array (items x dims), got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError("features contain NaN or infinite values")
    return x
