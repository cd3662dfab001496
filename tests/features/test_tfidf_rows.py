"""The TF-IDF baseline's rows computed in batch (`fit_tfidf_rows`, `TfidfBackbone.rows`) are the rows the feature
extractor gives item by item, so the saved model predicts as it was scored."""

from __future__ import annotations

import numpy as np
from scipy.sparse import issparse

from headstart.backbones.featurizers import TfidfBackbone, fit_tfidf_rows
from headstart.data import from_arrays
from headstart.features import extract_features
from tests.conftest import make_texts


def test_batch_rows_are_the_extractors_rows() -> None:
    texts, labels = make_texts(60)
    bb, x_sparse = fit_tfidf_rows(texts[:40])
    assert issparse(x_sparse) and issparse(bb.sparse_rows(texts[40:]))  # never items x terms dense
    x_fit = x_sparse.toarray()
    saved = TfidfBackbone(bb.spec, bb.module)  # as a bundle rebuilds it: from the state's tensors, not the fit
    np.testing.assert_array_equal(bb.sparse_rows(texts[40:]).toarray(), bb.rows(texts[40:]))
    for part, rows in ((texts[:40], x_fit), (texts[40:], bb.rows(texts[40:]))):
        ds = from_arrays(part, labels[: len(part)], modality="text")
        extracted = extract_features(saved, ds, cache=False, progress=False)
        assert rows.dtype == np.float32 and rows.shape == (len(part), bb.embed_dim)
        np.testing.assert_allclose(rows, extracted, atol=1e-6)
    assert np.count_nonzero(x_fit) > 0 and np.allclose(np.linalg.norm(x_fit, axis=1), 1.0, atol=1e-5)


def test_counted_once_gives_the_vectorizer_fitted_on_each_fold() -> None:
    """`TermCounts.fit(rows, other)` is `fit_tfidf_rows` on the texts at `rows` (vocabulary, IDF weights, rows) and
    their vectorizer's rows of the others, exactly: also where the term limit cuts through ties of frequency."""
    from headstart.backbones.featurizers import TermCounts

    texts, _ = make_texts(90)
    counts = TermCounts(texts)
    rng = np.random.default_rng(0)
    for max_terms in (40, 300, 20_000):  # a limit that cuts through tied frequencies, a looser one, none binding
        rows, other = np.split(rng.permutation(len(texts)), [60])
        bb, x, x_other = counts.fit(rows, other, max_terms=max_terms)
        ref, x_ref = fit_tfidf_rows([texts[i] for i in rows], max_terms=max_terms)
        assert bytes(bb.module.vocab.numpy()) == bytes(ref.module.vocab.numpy())
        np.testing.assert_array_equal(bb.module.idf.numpy(), ref.module.idf.numpy())
        assert issparse(x) and issparse(x_other) and x.dtype == x_other.dtype == np.float32
        np.testing.assert_array_equal(x.toarray(), x_ref.toarray())
        np.testing.assert_array_equal(x_other.toarray(), ref.rows([texts[i] for i in other]))
    assert bb.embed_dim < len(counts.terms)  # the fold's vocabulary is its own, not every text's
