"""Classification metrics as plain JSON-able dicts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def classification_metrics(y_true: Sequence[str], y_pred: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, balanced accuracy (the mean recall over the classes present), macro-F1, per-class
    precision/recall/F1/support and the confusion matrix (rows = true labels)."""
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

    labels = [str(label) for label in labels]
    y_true = [str(v) for v in y_true]
    y_pred = [str(v) for v in y_pred]
    p, r, f, s = precision_recall_fscore_support(y_true, y_pred, labels=labels, zero_division=0)
    return {
        "n": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(np.mean([r[i] for i in range(len(labels)) if s[i] > 0])) if len(y_true) else 0.0,
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "per_class": {
            label: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
            for i, label in enumerate(labels)
        },
        "labels": labels,
        "confusion": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def accuracy(y_true: Sequence[Any], y_pred: Sequence[Any]) -> float:
    return float(np.mean(np.asarray(y_true, dtype=str) == np.asarray(y_pred, dtype=str)))
