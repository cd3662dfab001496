"""The feature cache and Parquet parts on object storage (a real S3 API: moto's server on loopback), no Ray."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from headstart.errors import HeadstartError
from headstart.features import FeatureCache, extract_features
from headstart.features.parts import read_parts, write_parts
from headstart.storage import StorageError, open_storage
from tests.conftest import digit_images
from tests.features.test_cache import CountingBackbone


@pytest.fixture(scope="module")
def digits() -> list[np.ndarray]:
    return digit_images(4)[0]  # 40 images


def test_second_run_reads_everything_from_the_s3_cache(s3_prefix, digits, monkeypatch) -> None:
    monkeypatch.setenv("HEADSTART_CACHE", s3_prefix)  # FeatureCache() defaults to $HEADSTART_CACHE/features
    bb = CountingBackbone("headstart:tiny-cnn")
    first = extract_features(bb, digits, progress=False, num_workers=0)
    assert bb.seen == 40
    keys = open_storage(s3_prefix).list(f"features/{bb.cache_key}")
    assert len(keys) == 2 and {k.rsplit(".", 1)[1] for k in keys} == {"npy", "json"}  # one shard: rows + index
    second = extract_features(bb, digits, progress=False, num_workers=0)
    assert bb.seen == 40  # nothing extracted again: every row came from the bucket
    np.testing.assert_array_equal(first, second)


def test_a_damaged_shard_on_s3_is_detected_and_recomputed(s3_prefix, digits, caplog) -> None:
    cache = FeatureCache(f"{s3_prefix}/features")
    bb = CountingBackbone("headstart:tiny-cnn")
    good = extract_features(bb, digits[:10], cache=cache, progress=False, num_workers=0)
    store = cache.storage
    (rows_key,) = store.list(bb.cache_key, ".npy")
    store.write_bytes(rows_key, store.read_bytes(rows_key)[:-40])  # truncated
    again = extract_features(bb, digits[:10], cache=FeatureCache(f"{s3_prefix}/features"), progress=False)
    assert bb.seen == 20 and "checksum mismatch" in caplog.text
    np.testing.assert_allclose(good, again, rtol=1e-5, atol=1e-6)


def test_a_shard_being_written_is_never_visible(s3_prefix) -> None:
    """Rows are written to a local scratch file and uploaded whole on commit, the index last: until then another
    reader of the bucket finds nothing, and a writer that dies leaves nothing behind."""
    cache = FeatureCache(f"{s3_prefix}/features")
    writer = cache.writer("key", 4, 3)
    writer.write_at(slice(0, 2), np.ones((2, 3), np.float32))
    reader = FeatureCache(f"{s3_prefix}/features")
    assert reader.storage.list("key") == [] and reader.lookup("key", ["a", "b"]) == {}
    writer.abort()  # as a crash would: nothing was uploaded
    assert reader.storage.list("key") == []
    done = cache.writer("key", 2, 3)
    done.write_at(np.array([1, 0]), np.arange(6, dtype=np.float32).reshape(2, 3))
    done.commit(["a", "b"])
    found = reader.lookup("key", ["a", "b"])
    assert np.load(found["a"].shard)[found["a"].row].tolist() == [3.0, 4.0, 5.0]  # rows put by position


def test_concurrent_writers_on_one_bucket_each_commit_a_whole_shard(s3_prefix) -> None:
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        try:
            cache = FeatureCache(f"{s3_prefix}/features")  # one per writer, as on separate machines
            for shard in range(3):
                w = cache.writer("key", 5, 4)
                w.write_at(slice(0, 5), np.full((5, 4), worker * 10 + shard, np.float32))
                w.commit([f"{worker}-{shard}-{i}" for i in range(5)])
        except BaseException as exc:  # noqa: BLE001 - reported by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    wanted = [f"{w}-{s}-{i}" for w in range(4) for s in range(3) for i in range(5)]
    found = FeatureCache(f"{s3_prefix}/features").lookup("key", wanted)
    assert len(found) == 60  # 12 shards, every row verified
    loc = found["2-1-3"]
    assert np.load(loc.shard)[loc.row].tolist() == [21.0] * 4


def test_parts_on_s3_are_written_once_and_kept_on_a_rerun(s3_prefix) -> None:
    ids = [f"item-{i}" for i in range(25)]
    vectors = np.random.default_rng(0).standard_normal((25, 3)).astype(np.float32)
    asked: list[tuple[int, int]] = []

    def features_for(rows: slice) -> np.ndarray:
        asked.append((rows.start, rows.stop))
        return vectors[rows]

    out = f"{s3_prefix}/feats"
    first = write_parts(out, ids, ids, "key", features_for, rows_per_part=10)
    assert first["written"] == [f"part-0000{i}-of-00003.parquet" for i in range(3)]
    open_storage(out).delete("part-00001-of-00003.parquet")  # as if the run had crashed before this part
    second = write_parts(out, ids, ids, "key", features_for, rows_per_part=10)
    assert second == {"written": ["part-00001-of-00003.parquet"], "kept": first["written"][::2]}
    assert asked == [(0, 10), (10, 20), (20, 25), (10, 20)]  # only the missing part was computed again
    got_ids, got = read_parts(out)
    assert got_ids == ids
    np.testing.assert_array_equal(got, vectors)
    changed = write_parts(out, ids, [*ids[:-1], "other"], "key", features_for, rows_per_part=10)
    assert changed["written"] == ["part-00002-of-00003.parquet"]  # its items changed: made again


def test_a_missing_bucket_is_one_clear_error(s3_server) -> None:
    with pytest.raises(StorageError, match=r"s3://no-such-bucket/x: the bucket 'no-such-bucket' does not exist"):
        write_parts("s3://no-such-bucket/x", ["a"], ["a"], "key", lambda rows: np.zeros((1, 2), np.float32))


def test_an_unreachable_endpoint_is_one_clear_error(monkeypatch) -> None:
    import s3fs

    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "x")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "x")
    s3fs.S3FileSystem.clear_instance_cache()
    with pytest.raises(StorageError, match=r"s3://bucket/prefix.*cannot be reached \(Could not connect"):
        open_storage("s3://bucket/prefix", check=True)
    s3fs.S3FileSystem.clear_instance_cache()
    assert issubclass(StorageError, HeadstartError)


def test_local_paths_keep_the_plain_route(tmp_path) -> None:
    """No fsspec for a local folder or a file:// URL: pathlib and os.replace, as before."""
    for root in (tmp_path, f"file://{tmp_path}"):
        store = open_storage(root)
        assert store.local("k") == tmp_path / "k"
        store.write_bytes("a/b.json", json.dumps({"x": 1}).encode())
        assert store.list("a", ".json") == ["a/b.json"]
