"""The feature cache: a second run extracts nothing, new items are the only ones extracted, damage is detected."""

from __future__ import annotations

import numpy as np
import pytest

from headstart.backbones import create_backbone
from headstart.features import FeatureCache, extract_features
from tests.conftest import noise_images


class CountingBackbone:
    """Wraps a real backbone and counts how many items go through its forward pass."""

    def __init__(self, spec: str) -> None:
        self.inner = create_backbone(spec)
        self.seen = 0

    def __getattr__(self, name: str):
        return getattr(self.inner, name)

    def embed(self, batch):
        self.seen += self.inner.batch_size_of(batch)
        return self.inner.embed(batch)


def images(n: int, seed: int) -> list[np.ndarray]:
    return noise_images(n, (12, 12), seed)


def test_second_run_reads_everything_from_cache(tmp_path) -> None:
    cache = FeatureCache(tmp_path)
    bb = CountingBackbone("headstart:tiny-cnn")
    items = images(40, 0)
    first = extract_features(bb, items, cache=cache, progress=False, num_workers=0)
    assert bb.seen == 40
    second = extract_features(bb, items, cache=cache, progress=False, num_workers=0)
    assert bb.seen == 40  # nothing extracted again
    np.testing.assert_array_equal(first, second)
    uncached = extract_features(bb, items, cache=False, progress=False, num_workers=0)
    np.testing.assert_allclose(first, uncached, rtol=1e-5, atol=1e-6)


def test_adding_items_extracts_only_the_new_ones(tmp_path) -> None:
    cache = FeatureCache(tmp_path)
    bb = CountingBackbone("headstart:tiny-cnn")
    old = images(30, 0)
    extract_features(bb, old, cache=cache, progress=False, num_workers=0)
    new = images(10, 1)
    feats = extract_features(bb, old + new, cache=cache, progress=False, num_workers=0)
    assert bb.seen == 40 and feats.shape == (40, bb.embed_dim)


def test_duplicate_items_are_extracted_once(tmp_path) -> None:
    bb = CountingBackbone("headstart:tiny-cnn")
    one = images(1, 3)
    feats = extract_features(bb, one * 5, cache=FeatureCache(tmp_path), progress=False, num_workers=0)
    assert bb.seen == 1
    assert np.allclose(feats, feats[0])


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_shard_is_detected_and_recomputed(tmp_path, damage: str, caplog) -> None:
    cache = FeatureCache(tmp_path)
    bb = CountingBackbone("headstart:tiny-cnn")
    items = images(20, 0)
    good = extract_features(bb, items, cache=cache, progress=False, num_workers=0)
    (shard,) = list(tmp_path.rglob("*.npy"))
    data = bytearray(shard.read_bytes())
    if damage == "truncate":
        shard.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[-7] ^= 0xFF
        shard.write_bytes(bytes(data))
    again = extract_features(bb, items, cache=cache, progress=False, num_workers=0)
    assert bb.seen == 40  # all 20 recomputed
    assert "checksum mismatch" in caplog.text
    np.testing.assert_allclose(good, again, rtol=1e-5, atol=1e-6)


def test_different_weights_never_share_cache_rows(tmp_path) -> None:
    a = create_backbone("headstart:tiny-cnn?seed=0")
    b = create_backbone("headstart:tiny-cnn?seed=1")
    assert a.cache_key != b.cache_key
    items = images(4, 0)
    fa = extract_features(a, items, cache=FeatureCache(tmp_path), progress=False, num_workers=0)
    fb = extract_features(b, items, cache=FeatureCache(tmp_path), progress=False, num_workers=0)
    assert not np.allclose(fa, fb)


def test_out_file_is_a_memory_mapped_npy(tmp_path) -> None:
    bb = create_backbone("headstart:tiny-cnn")
    out = tmp_path / "feats.npy"
    feats = extract_features(bb, images(9, 0), cache=False, progress=False, out=out, num_workers=1)
    assert isinstance(feats, np.memmap) and feats.shape == (9, bb.embed_dim)
    np.testing.assert_array_equal(np.load(out), feats)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_unreadable_item_names_the_item() -> None:
    from headstart.errors import DataError

    bb = create_backbone("headstart:tiny-cnn")
    with pytest.raises(DataError, match=r"item #1: cannot be read"):
        extract_features(bb, [np.zeros((8, 8), np.uint8), np.zeros((2, 2, 7), np.uint8)], cache=False, progress=False)


def test_batches_move_to_the_extraction_device_whatever_their_container():
    import torch
    from transformers import BatchEncoding

    from headstart.features.extract import to_device

    meta = torch.device("meta")
    tokens = to_device(BatchEncoding({"input_ids": torch.ones(2, 3, dtype=torch.long)}), meta)
    assert tokens["input_ids"].device == meta
    assert to_device([torch.zeros(1), (torch.zeros(2),)], meta)[1][0].device == meta
    assert to_device(torch.zeros(1), meta).device == meta
