"""Tiny data for the pretraining tests: 120 digits (12 per class), unlabelled and labelled, and shared checks."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.data import Dataset, from_arrays


@pytest.fixture(scope="session")
def pool(digits_small: tuple[np.ndarray, np.ndarray]) -> Dataset:
    images, _ = digits_small
    return from_arrays(images, modality="image")


@pytest.fixture(scope="session")
def labelled(digits_small: tuple[np.ndarray, np.ndarray]) -> Dataset:
    images, labels = digits_small
    return from_arrays(images, labels, modality="image")
