"""The MLP head: Dense(hidden, relu) -> dropout -> softmax, as in the classic Keras VGG16 transfer recipe.

Trained with AdamW on mini-batches; with `early_stopping`, a stratified slice of the training data is held out and
the weights with the best validation loss are kept. `hidden="auto"` and `dropout="auto"` (the defaults) are chosen
by 3-fold cross-validation on the training features among HIDDEN_GRID x DROPOUT_GRID.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from headstart.heads.base import TorchHead, apply_scaling, scaling_stats
from headstart.heads.tuning import (
    best,
    cross_validate,
    described,
    folds,
    group_rows,
    key,
    remembered_scores,
    sample_for_cv,
)

HIDDEN_GRID = (256, 1024)
DROPOUT_GRID = (0.2, 0.5)
CV_ITEMS = 1000  # an MLP trains for many epochs: settings are chosen on at most this many items
FALLBACK = {"hidden": 1024, "dropout": 0.5}  # the classic Keras recipe, where there is too little data to choose


class MLPHead(TorchHead):
    kind = "mlp"

    def __init__(
        self,
        hidden: int | str = "auto",
        dropout: float | str = "auto",
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
        hidden = getattr(self, "hidden_", None) or (FALLBACK["hidden"] if self.hidden == "auto" else self.hidden)
        dropout = getattr(self, "dropout_", None)
        dropout = dropout if dropout is not None else (FALLBACK["dropout"] if self.dropout == "auto" else self.dropout)
        return nn.Sequential(
            nn.Linear(dim, int(hidden)), nn.ReLU(), nn.Dropout(float(dropout)), nn.Linear(int(hidden), n_classes)
        )

    def _select(self, x: np.ndarray, y_idx: np.ndarray, groups: np.ndarray | None = None) -> None:
        hiddens = list(HIDDEN_GRID) if self.hidden == "auto" else [self.hidden]
        dropouts = list(DROPOUT_GRID) if self.dropout == "auto" else [self.dropout]
        self.hidden_, self.dropout_ = hiddens[0], dropouts[0]
        if len(hiddens) == len(dropouts) == 1:
            return
        keep = sample_for_cv(y_idx, int(self.random_state), limit=CV_ITEMS, groups=groups)
        xs, ys, gs = x[keep], y_idx[keep], None if groups is None else groups[keep]
        splits = folds(ys, 3, int(self.random_state), gs)[:3]
        if not splits:
            self.hidden_ = FALLBACK["hidden"] if self.hidden == "auto" else self.hidden
            self.dropout_ = FALLBACK["dropout"] if self.dropout == "auto" else self.dropout
            self.chosen_ = {"hidden": self.hidden_, "dropout": self.dropout_, "by": "too few items to cross-validate"}
            return
        weights = torch.as_tensor(self._class_weights(ys), dtype=torch.float32)

        def fit_predict(params: dict, tr: np.ndarray, te: np.ndarray) -> dict[str, np.ndarray]:
            self.hidden_, self.dropout_ = params["hidden"], params["dropout"]
            stats = scaling_stats(xs[tr], "standard")
            generator = torch.Generator().manual_seed(int(self.random_state))
            torch.manual_seed(int(self.random_state))
            core = self._build(x.shape[1], len(self.classes_))
            xtr = torch.as_tensor(apply_scaling(xs[tr], *stats))
            self._train(core, xtr, torch.as_tensor(ys[tr]), weights, generator, None if gs is None else gs[tr])
            core.eval()
            with torch.no_grad():
                proba = torch.softmax(core(torch.as_tensor(apply_scaling(xs[te], *stats))), 1).numpy()
            return {key(params): proba}

        grid = [{"hidden": h, "dropout": d} for h in hiddens for d in dropouts]
        rows = (xs, ys, gs)
        scores = remembered_scores(self, rows, lambda: cross_validate(grid, fit_predict, splits, ys))
        winner = best(scores)
        self.hidden_, self.dropout_ = winner.params["hidden"], winner.params["dropout"]
        self.chosen_ = {
            "hidden": self.hidden_,
            "dropout": self.dropout_,
            "by": described(splits, len(ys), gs),
            "cv_accuracy": winner.accuracy,
            "cv_std": winner.spread,
        }
        self.cv_results_ = [s.to_json() for s in scores]

    def _train(
        self,
        core: nn.Module,
        x: torch.Tensor,
        y: torch.Tensor,
        weights: torch.Tensor,
        generator: torch.Generator,
        groups: np.ndarray | None = None,
    ) -> None:
        train_idx, val_idx = self._holdout(y.numpy(), groups)
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

    def _holdout(self, y: np.ndarray, groups: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(training rows, validation rows or None): a stratified `validation_fraction` of the items for early
        stopping. With `groups`, whole groups are drawn, so no copy of a validation item (groups of one class: an
        item and its augmented copies) and no item of a validation speaker (groups of several classes) trains the
        network that it is meant to check; with fewer speakers (groups of several classes) than
        1 / `validation_fraction`, or a class with fewer than 2 items, no slice."""
        everything = torch.arange(len(y))
        if not self.early_stopping:
            return everything, None
        rows = np.arange(len(y))
        first, row_group, one_class_each = (rows, rows, True) if groups is None else group_rows(y, groups)
        if not one_class_each:  # groups of several classes
            return self._group_holdout(y, row_group)
        labels = y[first]  # one label per item (per group)
        n_val = int(round(len(first) * self.validation_fraction))
        if np.bincount(labels).min() < 2 or n_val < len(np.unique(y)):
            return everything, None
        from sklearn.model_selection import train_test_split

        tr, va = train_test_split(
            np.arange(len(first)), test_size=n_val, stratify=labels, random_state=self.random_state
        )
        if groups is None:
            return torch.as_tensor(tr), torch.as_tensor(va)
        in_val = np.isin(row_group, va)
        return torch.as_tensor(np.flatnonzero(~in_val)), torch.as_tensor(np.flatnonzero(in_val))

    def _group_holdout(self, y: np.ndarray, row_group: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        from sklearn.model_selection import StratifiedGroupKFold

        k = max(2, int(round(1 / self.validation_fraction)))
        if int(row_group.max()) + 1 < k or np.bincount(y).min() < 2:
            return torch.arange(len(y)), None
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=self.random_state)
        tr, va = next(splitter.split(np.zeros(len(y)), y, row_group))
        return torch.as_tensor(tr), torch.as_tensor(va)
