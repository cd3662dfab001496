"""The source classifier's logits (e.g. ImageNet's 1,000 classes) for every item, batched and cached like features.

Where the classifier reads the backbone's embeddings themselves (timm models: the embeddings are its pre-logits),
the logits are that classifier applied to the cached features: no second pass of the network (`rank` of
EfficientNet-Lite0 on the 1,797 digits spent 33 of its 50 s on that pass).

LEEP and NCE judge a backbone by how its own classifier's outputs relate to the target labels. Those outputs come
from `backbone.source_logits(batch)`; wrapping that as the `embed` of a stand-in backbone lets `extract_features`
do the batching, the DataLoader workers, the progress bar and the on-disk cache, under a key of its own.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from headstart.backbones.base import Backbone
from headstart.data.dataset import Dataset, content_hash
from headstart.features.cache import FeatureCache
from headstart.features.extract import extract_features


class SourceClassifier(Backbone):
    """`backbone` seen through its source classifier: `embed(batch)` gives the (batch, n_classes) logits."""

    def __init__(self, backbone: Backbone, n_classes: int) -> None:
        super().__init__(  # the module is the backbone's own, taken (and so built) only when logits are computed
            f"{backbone.spec} [source logits]",
            lambda: backbone.module,
            embed_dim=n_classes,
            weights_id=backbone.weights_id,
        )
        self.backbone = backbone
        self.modality = backbone.modality

    @property
    def preprocessing(self) -> dict[str, Any]:
        return self.backbone.preprocessing

    @property
    def cache_key(self) -> str:
        return hashlib.sha256(f"source-logits\0{self.backbone.cache_key}".encode()).hexdigest()[:24]

    def ready_to_prepare(self) -> None:
        getattr(self.backbone, "ready_to_prepare", lambda: None)()

    def prepare(self, item: Any) -> Any:
        return self.backbone.prepare(item)

    def collate(self, prepared: Sequence[Any]) -> Any:
        return self.backbone.collate(prepared)

    def batch_size_of(self, batch: Any) -> int:
        return self.backbone.batch_size_of(batch)

    def embed(self, batch: Any) -> torch.Tensor:
        logits = self.backbone.source_logits(batch)
        if logits is None:
            raise ValueError(f"{self.backbone.spec} stopped giving source logits")
        return logits


def source_classes(backbone: Backbone, example: Any) -> int | None:
    """How many classes the backbone's source classifier has, or None when it has none (one forward of `example`)."""
    backbone.module.eval()
    with torch.inference_mode():
        logits = backbone.source_logits(backbone.collate([backbone.prepare(example)]))
    return None if logits is None else int(logits.shape[-1])


def extract_source_logits(
    backbone: Backbone,
    data: Dataset | Sequence[Any],
    *,
    batch_size: int = 32,
    num_workers: int | None = None,
    cache: FeatureCache | bool = True,
    progress: bool = True,
) -> np.ndarray | None:
    """Source-classifier logits of every item, shape (N, n_source_classes), float32; None if the backbone has none.

    Same batching and cache as `extract_features`: a second call on the same items reads them back.
    Softmax them for LEEP; their argmax are the hard source labels NCE uses.
    """
    items = data.items if isinstance(data, Dataset) else list(data)
    if not items:
        raise ValueError("no items to run the source classifier on")
    if not getattr(backbone, "has_source_classifier", True):
        return None  # known without building the backbone (e.g. every text encoder)
    store = cache if isinstance(cache, FeatureCache) else (FeatureCache() if cache else None)
    if getattr(backbone, "classifies_features", False) and not _all_cached(store, backbone, items):
        # the classifier reads the (cached) features; its logits are cached in turn, so that a warm call reads
        # them back below without building the backbone
        x = extract_features(backbone, data, batch_size=batch_size, num_workers=num_workers,
                             cache=store if store is not None else False, progress=progress)  # fmt: skip
        logits = backbone.source_logits_of_features(torch.as_tensor(np.asarray(x, dtype=np.float32)))
        if logits is None:
            return None
        logits = logits.float().cpu().numpy()
        if store is not None:
            _store(store, SourceClassifier(backbone, 0).cache_key, items, logits)
        return logits
    # Logits already cached say how many classes there are; otherwise one item through the network tells.
    n_classes = _cached_width(store, backbone, items) or source_classes(backbone, items[0])
    if n_classes is None:
        return None
    return extract_features(
        SourceClassifier(backbone, n_classes),
        data,
        batch_size=batch_size,
        num_workers=num_workers,
        cache=store if store is not None else False,
        progress=progress,
    )


def _all_cached(store: FeatureCache | None, backbone: Backbone, items: Sequence[Any]) -> bool:
    if store is None:
        return False
    hashes = list(dict.fromkeys(content_hash(i) for i in items))
    return len(store.lookup(SourceClassifier(backbone, 0).cache_key, hashes)) == len(hashes)


def _store(store: FeatureCache, key: str, items: Sequence[Any], logits: np.ndarray) -> None:
    """Cache each distinct item's logits once, as `extract_features` would have."""
    first = {}
    for i, item in enumerate(items):
        first.setdefault(content_hash(item), i)
    writer = store.writer(key, len(first), logits.shape[1])
    try:
        writer.write_at(slice(None), logits[list(first.values())])
        writer.commit(list(first))
    except BaseException:
        writer.abort()
        raise


def _cached_width(store: FeatureCache | None, backbone: Backbone, items: Sequence[Any]) -> int | None:
    if store is None:
        return None
    key = SourceClassifier(backbone, 0).cache_key
    found = store.lookup(key, [content_hash(items[0])])
    if not found:
        return None
    (location,) = found.values()
    return int(np.load(location.shard, mmap_mode="r").shape[1])


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float64, stable for large logits."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
