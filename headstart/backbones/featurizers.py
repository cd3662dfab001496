"""Hand-made features as backbones, so a simple baseline, or pretrained features joined with it, is a model like
any other: cached, fitted with a tuned head, saved as a bundle, predicted end to end.

- `features:pixels?side=32&mode=RGB` — an image resized to side x side, its pixel values flattened (as the raw-pixel
  baseline of headstart.evaluation.baselines reads them; `mode=L` for grey).
- `features:log-mel` — a clip as flat log-mel patches (the audio baseline's 800 values).
- `features:tfidf?terms=V&bytes=B` — TF-IDF of word uni- and bigrams (the text baseline's recipe), L2-normalised.
  Unlike the others it is fitted on the training texts (`fit_tfidf`): its vocabulary and IDF weights are tensors of
  its module, so a bundle saves them as trained backbone weights (safetensors, UTF-8 bytes for the terms); its rows
  are wide and cheap to compute, so they bypass the feature cache.
- `concat:A + B` — the features of backbone A, then those of backbone B, for every item (each part cached alone).

They have no weights: `weights_id` names the recipe and its version, so the cache changes when the recipe does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from headstart.backbones.base import Backbone, BackboneSpec
from headstart.errors import BackboneError

RECIPE_VERSION = "1"


class FeaturizerBackbone(Backbone):
    """Stateless features: `featurize(item)` gives a float vector of `embed_dim` values."""

    def __init__(
        self, spec: str, modality: str, embed_dim: int, featurize: Callable[[Any], np.ndarray], options: dict
    ) -> None:
        super().__init__(spec, nn.Identity(), embed_dim=embed_dim, weights_id=f"recipe-v{RECIPE_VERSION}")
        self.modality = modality
        self._featurize = featurize
        self._options = options

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {"kind": "featurizer", **self._options}

    def prepare(self, item: Any) -> torch.Tensor:
        row = np.asarray(self._featurize(item), dtype=np.float32).reshape(-1)
        if row.shape[0] != self.embed_dim:
            raise ValueError(f"gave {row.shape[0]} values where {self.embed_dim} were expected")
        return torch.from_numpy(row)

    def collate(self, prepared: Sequence[torch.Tensor]) -> torch.Tensor:
        return torch.stack(list(prepared))

    def embed(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.float()

    def batch_size_of(self, batch: torch.Tensor) -> int:
        return int(batch.shape[0])

    def place(self, device: torch.device | str, *, half_precision: bool = False) -> None:
        """Nothing to move: the features are computed on the host."""


def load(spec: BackboneSpec) -> Backbone:
    if spec.name == "pixels":
        side = int(spec.options.get("side", 32))
        mode = spec.options.get("mode", "RGB")
        if mode not in ("RGB", "L") or not 1 <= side <= 512:
            raise BackboneError(f"{spec}: mode must be RGB or L and side between 1 and 512")
        channels = 3 if mode == "RGB" else 1
        return FeaturizerBackbone(
            str(spec),
            "image",
            side * side * channels,
            lambda item: _pixels(item, side, mode),
            {"side": side, "mode": mode},
        )
    if spec.name == "tfidf":
        terms, size = int(spec.options.get("terms", 0)), int(spec.options.get("bytes", 0))
        return TfidfBackbone(str(spec), TfidfState(torch.zeros(terms), torch.zeros(size, dtype=torch.uint8)))
    if spec.name == "log-mel":
        return FeaturizerBackbone(str(spec), "audio", 800, _log_mel, {"recipe": "log-mel 40x20"})
    raise BackboneError(
        f"unknown featurizer {spec.name!r} in {spec}; known: features:pixels, features:log-mel, features:tfidf"
    )


def _pixels(item: Any, side: int, mode: str) -> np.ndarray:
    from headstart.data import load_image

    image = load_image(item).convert(mode)
    if image.size != (side, side):
        image = image.resize((side, side))
    return np.asarray(image, dtype=np.float32).reshape(-1)


def _log_mel(item: Any) -> np.ndarray:
    from headstart.data.audio import log_mel_features

    return log_mel_features([item])[0]


TFIDF_TERMS = 20_000


class TfidfState(nn.Module):
    """A fitted TF-IDF as tensors: IDF weight per term, and the terms as UTF-8 bytes joined by newlines."""

    def __init__(self, idf: torch.Tensor, vocab: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("idf", idf.float())
        self.register_buffer("vocab", vocab.to(torch.uint8))


class TfidfBackbone(FeaturizerBackbone):
    cacheable = False

    def __init__(self, spec: str, state: TfidfState) -> None:
        n = int(state.idf.shape[0])
        super().__init__(spec, "text", n, self._row, {"recipe": "tfidf 1-2 grams, sublinear tf", "terms": n})
        self.module = state
        self._vectorizer: Any = None
        self.refresh_weights_id()

    def refresh_weights_id(self) -> None:
        """The id of the vocabulary and weights the state holds now (after loading them into it, too)."""
        self.weights_id = "tfidf-" + _digest(self.module)
        self._vectorizer = None

    def _row(self, item: Any) -> np.ndarray:
        return self.rows([item])[0]

    def rows(self, texts: Sequence[Any]) -> np.ndarray:
        """(len(texts), terms) float32 TF-IDF rows of many texts at once: one vectorizer call instead of one per
        text (the feature extractor's path), which on 1,112 BBC articles takes 0.7 s instead of 1.3 s."""
        return self.sparse_rows(texts).toarray()

    def sparse_rows(self, texts: Sequence[Any]) -> Any:
        """`rows` as scipy compressed sparse rows (float32): TF-IDF rows are ~98% zeros, and a head's fit on many
        texts reads them as they are (the dense rows cost 80 MB per 1,000 texts at 20,000 terms)."""
        if self._vectorizer is None:
            self._vectorizer = _vectorizer(self.module)
        return self._vectorizer.transform([str(t) for t in texts]).astype(np.float32)

    def collate(self, prepared: Sequence[Any]) -> torch.Tensor:
        return torch.stack(list(prepared))

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "architecture": self.spec}


def fit_tfidf(texts: Sequence[str], max_terms: int = TFIDF_TERMS) -> TfidfBackbone:
    """The text baseline's TF-IDF, fitted on `texts`, as a backbone."""
    return fit_tfidf_rows(texts, max_terms)[0]


def fit_tfidf_rows(texts: Sequence[str], max_terms: int = TFIDF_TERMS) -> tuple[TfidfBackbone, Any]:
    """`fit_tfidf`, and the rows of `texts` themselves (float32 compressed sparse rows), which the fit computes
    anyway."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), max_features=max_terms)
    matrix = vec.fit_transform([str(t) for t in texts])
    terms = sorted(vec.vocabulary_, key=vec.vocabulary_.get)
    return _tfidf_backbone(terms, vec.idf_, vec), matrix.astype(np.float32)


def _tfidf_backbone(terms: Sequence[str], idf: np.ndarray, vectorizer: Any = None) -> TfidfBackbone:
    blob = "\n".join(terms).encode("utf-8")
    state = TfidfState(torch.as_tensor(idf, dtype=torch.float32), torch.frombuffer(bytearray(blob), dtype=torch.uint8))
    bb = TfidfBackbone(f"features:tfidf?bytes={len(blob)}&terms={len(terms)}", state)
    bb._vectorizer = vectorizer  # the fitted one where there is one: the same vocabulary order and IDF weights
    return bb


class TermCounts:
    """Word and word-pair counts of a fixed list of texts, counted once, from which `fit` derives the TF-IDF that
    `fit_tfidf_rows` would fit on any subset of them, and its rows for any other subset.

    Cross-validation must refit the vectorizer in every fold (its vocabulary and IDF weights are part of the
    model; fitting them on a fold's test texts would leak), but a text's counts do not depend on the other texts:
    counting the same articles again for every fold, candidate and label budget was most of the text baseline's
    cost in `auto`. Exact, not approximate: the vocabulary is chosen as scikit-learn chooses it (the terms of the
    subset in alphabetical order, then the `max_terms` most frequent, ties as its argsort breaks them) and
    scikit-learn's own TfidfTransformer weights the counts; a test compares both with TfidfVectorizer on folds."""

    def __init__(self, texts: Sequence[Any]) -> None:
        from sklearn.feature_extraction.text import CountVectorizer

        # float64 counts, as TfidfVectorizer counts: its term-frequency ranking then sorts the very same array
        vec = CountVectorizer(ngram_range=(1, 2), dtype=np.float64)
        self.counts = vec.fit_transform([str(t) for t in texts]).tocsr()  # columns: every term, alphabetical
        self.terms = vec.get_feature_names_out()

    def fit(
        self, rows: np.ndarray, other_rows: np.ndarray, max_terms: int = TFIDF_TERMS
    ) -> tuple[TfidfBackbone, Any, Any]:
        """The TF-IDF fitted on the texts at `rows` alone, their rows, and the rows of the texts at `other_rows`
        under it (float32 compressed sparse rows, as `fit_tfidf_rows` gives)."""
        from scipy.sparse import csr_matrix
        from sklearn.feature_extraction.text import TfidfTransformer

        counts = self.counts[np.asarray(rows)]
        columns = np.flatnonzero(np.bincount(counts.indices, minlength=counts.shape[1]))  # terms the subset has
        if len(columns) > max_terms:  # as CountVectorizer._limit_features: the most frequent, kept in column order
            frequency = np.asarray(counts[:, columns].sum(axis=0)).ravel()
            columns = columns[np.sort((-frequency).argsort()[:max_terms])]
        kept = counts[:, columns]
        weigh = TfidfTransformer(sublinear_tf=True).fit(kept)
        x = weigh.transform(kept).astype(np.float32)
        other = self.counts[np.asarray(other_rows, dtype=np.int64)][:, columns]
        x_other = csr_matrix((0, len(columns)), dtype=np.float32)
        if other.shape[0]:
            x_other = weigh.transform(other).astype(np.float32)
        return _tfidf_backbone(list(self.terms[columns]), weigh.idf_), x, x_other


def side_by_side(dense: np.ndarray, rows: Any) -> Any:
    """A backbone's features (dense) beside TF-IDF rows (sparse), as float32 compressed sparse rows: the head's
    solver then costs the non-zeros, and nothing the size of items x terms is ever dense."""
    from scipy.sparse import csr_matrix, hstack

    return hstack([csr_matrix(np.asarray(dense, np.float32)), rows], format="csr", dtype=np.float32)


def _vectorizer(state: nn.Module) -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer

    terms = bytes(state.vocab.numpy().tobytes()).decode("utf-8").split("\n")
    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), vocabulary={t: i for i, t in enumerate(terms)})
    vec.idf_ = state.idf.numpy().astype(np.float64)
    return vec


def _digest(state: nn.Module) -> str:
    import hashlib

    h = hashlib.sha256(state.vocab.numpy().tobytes())
    h.update(state.idf.numpy().tobytes())
    return h.hexdigest()[:16]


class ConcatBackbone(Backbone):
    """The features of several backbones side by side. Extraction runs (and caches) each part on its own, so the
    parts' caches serve it; fine-tuning it is not supported.

    Its module holds the state of the parts fitted to data (a TF-IDF's vocabulary and weights), keyed by the part's
    position, so a model on `concat:st:all-MiniLM-L6-v2 + features:tfidf?...` saves and loads that state like a
    fine-tuned backbone's weights; pretrained parts keep their own weights and contribute nothing to it."""

    def __init__(self, spec: str, parts: list[Backbone]) -> None:
        modalities = {p.modality for p in parts}
        if len(modalities) != 1:
            raise BackboneError(f"{spec}: parts encode different modalities ({', '.join(sorted(modalities))})")
        dim = sum(p.embed_dim for p in parts)
        fitted = nn.ModuleDict({str(i): p.module for i, p in enumerate(parts) if isinstance(p, TfidfBackbone)})
        super().__init__(spec, fitted, embed_dim=dim, weights_id="+".join(p.weights_id for p in parts))
        self.modality = parts[0].modality
        self.parts = parts

    @property
    def preprocessing(self) -> dict[str, Any]:
        return {"kind": "concat", "parts": [p.preprocessing for p in self.parts]}

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "architecture": self.spec, "parts": [p.describe() for p in self.parts]}


def available() -> list[dict[str, Any]]:
    note = "hand-made features (the baselines' own), as a backbone"
    return [
        {"spec": "features:pixels", "modality": "image", "offline": True, "note": note},
        {"spec": "features:log-mel", "modality": "audio", "offline": True, "note": note},
    ]
