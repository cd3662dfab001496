"""The bundled sample sets, and the promise that importing headstart.data stays light."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from headstart.data import SAMPLES, load_data
from headstart.errors import DataError


def test_samples_are_described() -> None:
    assert set(SAMPLES) == {"digits", "bbc-news", "spoken-digits", "fashion-mnist", "solar-cells", "tweet-sentiment",
                            "spoken-phrases", "bbc-headlines", "bbc-titles"}  # fmt: skip
    assert all(isinstance(text, str) and "\n" not in text for text in SAMPLES.values())


def test_digits() -> None:
    ds = load_data("samples:digits")
    assert len(ds) == 1797 and ds.modality == "image" and ds.issues == []
    assert sorted(set(ds.labels)) == [str(d) for d in range(10)]
    assert ds.items[0].shape == (8, 8) and ds.items[0].dtype == np.uint8
    assert max(int(a.max()) for a in ds.items) == 255
    assert ds.where[5] == "samples:digits #5" and ds.source == "samples:digits"
    with pytest.raises(DataError, match="samples:digits holds image data, not text"):
        load_data("samples:digits", modality="text")


def test_bbc_news() -> None:
    ds = load_data("samples:bbc-news")
    assert len(ds) == 2225 and ds.modality == "text" and ds.issues == []
    assert Counter(ds.labels) == {"sports": 511, "business": 510, "politics": 417, "tech": 401, "entertainment": 386}
    assert ds.where[0] == "samples:bbc-news/business/001.txt"
    # the one Windows-1252 article of the corpus is decoded, not skipped
    assert "\u00a315.8m" in ds.items[ds.where.index("samples:bbc-news/sports/199.txt")]


def test_bbc_titles_are_the_articles_titles_labelled_with_their_topic() -> None:
    ds = load_data("samples:bbc-titles")
    assert ds.modality == "text" and ds.source == "samples:bbc-titles"
    assert len(ds) == 2096 and len(ds.issues) == 129  # 2,225 articles, 129 of them repeat an earlier title
    assert Counter(ds.labels) == {"business": 501, "sports": 500, "politics": 397, "entertainment": 365, "tech": 333}
    assert ds.items[0] == "Ad sales boost Time Warner profit" and ds.labels[0] == "business"
    assert ds.where[0] == "samples:bbc-titles/business/001.txt"
    assert len(set(t.lower() for t in ds.items)) == len(ds)  # no title on both sides of a split
    assert all(issue.problem.startswith("same title as samples:bbc-titles/") for issue in ds.issues)
    assert max(len(t.split()) for t in ds.items) <= 12  # short texts


def test_unknown_sample_lists_the_known_ones() -> None:
    with pytest.raises(DataError) as err:
        load_data("samples:mnist")
    assert str(err.value) == (
        "samples:mnist: unknown sample data set; the known ones are: samples:digits, samples:bbc-news, "
        "samples:spoken-digits, samples:bbc-titles, samples:fashion-mnist, samples:solar-cells, "
        "samples:tweet-sentiment, samples:spoken-phrases, samples:bbc-headlines"
    )
    with pytest.raises(DataError, match="samples:digits is a sample data set; label_columns=\\['y'\\] can only"):
        load_data("samples:digits", label_columns=["y"])


def test_import_is_light() -> None:
    code = (
        "import sys, headstart.data; "
        "print(sorted(m for m in ('torch', 'pandas', 'PIL', 'sklearn', 'pyarrow') if m in sys.modules))"
    )
    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
