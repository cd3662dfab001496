"""Honest baselines on the same split: TF-IDF + logistic regression for text, raw pixels + logistic regression
for images, log-mel + logistic regression for audio. Every accuracy headstart reports sits beside one of these."""

from __future__ import annotations

from typing import Any

import numpy as np

from headstart.data.audio import log_mel_features
from headstart.data.dataset import Dataset

RAW_SIDE = 32


def baseline_name(modality: str) -> str:
    names = {"text": "TF-IDF + logistic regression", "audio": "log-mel + logistic regression"}
    return names.get(modality, "raw pixels + logistic regression")


def baseline_predict(train: Dataset, test: Dataset, task: str, *, seed: int = 0) -> list[str]:
    """Fit the modality's baseline on `train` and predict `test`."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = train.targets[task]
    if train.modality == "text":
        from sklearn.feature_extraction.text import TfidfVectorizer

        model = make_pipeline(
            TfidfVectorizer(sublinear_tf=True, min_df=1, ngram_range=(1, 2), max_features=100_000),
            LogisticRegression(C=10.0, max_iter=2000, random_state=seed),
        )
        model.fit(train.items, y)
        return [str(v) for v in model.predict(test.items)]
    raw = log_mel_features if train.modality == "audio" else raw_pixels
    model = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000, random_state=seed))
    model.fit(raw(train.items), y)
    return [str(v) for v in model.predict(raw(test.items))]


def raw_pixels(items: list[Any]) -> np.ndarray:
    """Images as flat pixel vectors: as they are when all share one small shape (e.g. 8x8 digits), else 32x32 RGB."""
    from headstart.data import load_image

    arrays = [np.asarray(i) for i in items if isinstance(i, np.ndarray)]
    if len(arrays) == len(items) and len({a.shape for a in arrays}) == 1 and arrays[0].shape[0] <= RAW_SIDE:
        return np.stack([a.reshape(-1) for a in arrays]).astype(np.float32)
    rows = [np.asarray(load_image(i).resize((RAW_SIDE, RAW_SIDE))).reshape(-1) for i in items]
    return np.stack(rows).astype(np.float32)
