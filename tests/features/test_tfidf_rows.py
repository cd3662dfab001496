"""The TF-IDF baseline's rows computed in batch (`fit_tfidf_rows`, `TfidfBackbone.rows`) are the rows the feature
extractor gives item by item, so the saved model predicts as it was scored."""

from __future__ import annotations

import numpy as np

from headstart.backbones.featurizers import TfidfBackbone, fit_tfidf_rows
from headstart.data import from_arrays
from headstart.features import extract_features
from tests.conftest import make_texts


def test_batch_rows_are_the_extractors_rows() -> None:
    texts, labels = make_texts(60)
    bb, x_fit = fit_tfidf_rows(texts[:40])
    saved = TfidfBackbone(bb.spec, bb.module)  # as a bundle rebuilds it: from the state's tensors, not the fit
    for part, rows in ((texts[:40], x_fit), (texts[40:], bb.rows(texts[40:]))):
        ds = from_arrays(part, labels[: len(part)], modality="text")
        extracted = extract_features(saved, ds, cache=False, progress=False)
        assert rows.dtype == np.float32 and rows.shape == (len(part), bb.embed_dim)
        np.testing.assert_allclose(rows, extracted, atol=1e-6)
    assert np.count_nonzero(x_fit) > 0 and np.allclose(np.linalg.norm(x_fit, axis=1), 1.0, atol=1e-5)
