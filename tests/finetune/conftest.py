"""Tiny data for the fine-tuning tests: 60 digits (6 per class) as images, two-topic texts, and a two-column table."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.data import Dataset, from_arrays
from tests.conftest import digit_images


@pytest.fixture(scope="session")
def digits60() -> Dataset:
    images, labels = digit_images(6)
    return from_arrays(images, labels, modality="image")


@pytest.fixture(scope="session")
def digits_two_tasks() -> Dataset:
    """Digits with a second label column: odd or even."""
    images, labels = digit_images(6)
    parity = ["odd" if int(v) % 2 else "even" for v in labels]
    return from_arrays(images, {"digit": labels, "parity": parity}, modality="image")


@pytest.fixture(scope="session")
def topics() -> Dataset:
    rng = np.random.default_rng(0)
    business = ["market", "shares", "profit", "bank", "fell", "rose"]
    sport = ["team", "match", "goal", "won", "lost", "player"]
    texts, labels = [], []
    for i in range(48):
        topic = ["business", "sport"][i % 2]
        words = rng.choice(business if topic == "business" else sport, size=8)
        texts.append("the " + " ".join(words))
        labels.append(topic)
    return from_arrays(texts, labels, modality="text")
