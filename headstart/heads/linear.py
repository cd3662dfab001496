"""The softmax / linear head: softmax(W f(x) + b).

Fitted with scikit-learn's multinomial L-BFGS solver on the standardised features (a well-kept solver; no reason to
write another), then held as a torch `nn.Linear`, so the same head saves to safetensors, exports to ONNX and
fine-tunes with the backbone. `C` is scikit-learn's inverse L2 strength.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from headstart.heads.base import TorchHead


class LinearHead(TorchHead):
    kind = "linear"

    def __init__(
        self,
        C: float = 1.0,
        class_weight: str | dict | None = None,
        max_iter: int = 1000,
        tol: float = 1e-4,
        random_state: int = 0,
    ) -> None:
        self.C = C
        self.class_weight = class_weight
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def _build(self, dim: int, n_classes: int) -> nn.Module:
        return nn.Linear(dim, n_classes)

    def _train(
        self, core: nn.Module, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, generator: torch.Generator
    ) -> None:
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        solver = LogisticRegression(C=self.C, max_iter=self.max_iter, tol=self.tol)
        from threadpoolctl import threadpool_limits

        # One BLAS thread: these matrices are small, and threads fighting over 2 cores made fits 20-100x slower
        # under load (benchmarks/extract.py); single-threaded it matches scikit-learn's own time.
        with warnings.catch_warnings(), threadpool_limits(1, user_api="blas"):
            warnings.simplefilter("ignore", ConvergenceWarning)
            solver.fit(x.numpy(), y.numpy(), sample_weight=weights[y].numpy())
        coef, intercept = solver.coef_, solver.intercept_
        if coef.shape[0] == 1:  # scikit-learn keeps one row for two classes: logit(class 1) - logit(class 0)
            coef = torch.as_tensor(coef).repeat(2, 1) * torch.tensor([[-0.5], [0.5]], dtype=torch.float64)
            intercept = torch.as_tensor(intercept).repeat(2) * torch.tensor([-0.5, 0.5], dtype=torch.float64)
        with torch.no_grad():
            core.weight.copy_(torch.as_tensor(coef))
            core.bias.copy_(torch.as_tensor(intercept))
