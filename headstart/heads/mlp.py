"""The MLP head: Dense(hidden, relu) -> dropout -> softmax, as in the classic Keras VGG16 transfer recipe.

Trained with AdamW on mini-batches; with `early_stopping`, a stratified slice of the training data is held out and
the weights with the best validation loss are kept.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from headstart.heads.base import TorchHead


class MLPHead(TorchHead):
    kind = "mlp"

    def __init__(
        self,
        hidden: int = 1024,
        dropout: float = 0.5,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        max_epochs: int = 100,
        batch_size: int = 128,
        early_stopping: bool = True,
        validation_fraction: float = 0.15,
        patience: int = 10,
        class_weight: str | dict | None = None,
        random_state: int = 0,
    ) -> None:
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.class_weight = class_weight
        self.random_state = random_state

    def _build(self, dim: int, n_classes: int) -> nn.Module:
        return nn.Sequential(
            nn.Linear(dim, self.hidden), nn.ReLU(), nn.Dropout(self.dropout), nn.Linear(self.hidden, n_classes)
        )

    def _train(
        self, core: nn.Module, x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, generator: torch.Generator
    ) -> None:
        train_idx, val_idx = self._holdout(y.numpy())
        opt = torch.optim.AdamW(core.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        loss_fn = nn.CrossEntropyLoss(weight=weights)
        best, best_state, stale = float("inf"), None, 0
        self.n_epochs_ = 0
        for _ in range(self.max_epochs):
            core.train()
            perm = train_idx[torch.randperm(len(train_idx), generator=generator)]
            for start in range(0, len(perm), self.batch_size):
                idx = perm[start : start + self.batch_size]
                opt.zero_grad()
                loss_fn(core(x[idx]), y[idx]).backward()
                opt.step()
            self.n_epochs_ += 1
            if val_idx is None:
                continue
            core.eval()
            with torch.no_grad():
                val = loss_fn(core(x[val_idx]), y[val_idx]).item()
            if val < best - 1e-4:
                best, best_state, stale = val, copy.deepcopy(core.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        if best_state is not None:
            core.load_state_dict(best_state)

    def _holdout(self, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        everything = torch.arange(len(y))
        counts = np.bincount(y)
        n_val = int(round(len(y) * self.validation_fraction))
        if not self.early_stopping or counts.min() < 2 or n_val < len(counts):
            return everything, None
        from sklearn.model_selection import train_test_split

        tr, va = train_test_split(np.arange(len(y)), test_size=n_val, stratify=y, random_state=self.random_state)
        return torch.as_tensor(tr), torch.as_tensor(va)
