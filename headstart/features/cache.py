"""The feature cache: one folder per backbone key, rows stored in shards keyed by item content hash.

It lives under `$HEADSTART_CACHE/features`, a local folder or any fsspec URL (`s3://bucket/prefix`), see
`headstart.storage`. A shard is `NAME.npy` (float32 rows) plus `NAME.json` (the content hash of each row and the
sha256 of the .npy); NAME is random, so writers on many processes or machines never write the same key. Each file
is written atomically (a rename on a local disk, one PUT on an object store) and the .json last, so a shard without
it never counts: no reader ever sees half a shard. Every shard is verified before its rows are used: a truncated or
corrupted file is reported, deleted and its items extracted again.

Rows are written through a memory map of a local file, so memory stays flat however large a shard is; a remote
shard is uploaded whole when it is committed, and read back by downloading it to a local folder first.
"""

from __future__ import annotations

import atexit
import functools
import hashlib
import json
import logging
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headstart.paths import cache_root
from headstart.storage import Storage, is_remote, join, open_storage

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Location:
    shard: Path  # a local file (the shard itself, or its downloaded copy)
    row: int


def default_location() -> str | Path:
    """`$HEADSTART_CACHE/features`: a local folder, or a prefix under the URL `HEADSTART_CACHE` names."""
    root = os.environ.get("HEADSTART_CACHE", "")
    return join(root, "features") if is_remote(root) else cache_root() / "features"


class FeatureCache:
    """Content-addressed rows of features, under a local folder or an fsspec URL (default: `default_location()`)."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = root if root is not None else default_location()
        self.storage: Storage = open_storage(self.root)

    def lookup(self, key: str, hashes: list[str]) -> dict[str, Location]:
        """Locations of the wanted hashes that are cached in verified shards."""
        wanted = set(hashes)
        found: dict[str, Location] = {}
        for index_key in self.storage.list(key, ".json"):
            try:
                index = json.loads(self.storage.read_bytes(index_key))
                rows = index["hashes"]
            except FileNotFoundError:  # removed by another process since the listing
                continue
            except (OSError, ValueError, KeyError, TypeError):
                self._discard(index_key, "unreadable index")
                continue
            useful = [h for h in rows if h in wanted and h not in found]
            if not useful:
                continue
            shard, problem = self._fetch(_rows_key(index_key), index)
            if problem:
                self._discard(index_key, problem)
                continue
            for row, h in enumerate(rows):
                if h in wanted and h not in found:
                    found[h] = Location(shard, row)
        return found

    def writer(self, key: str, count: int, dim: int) -> ShardWriter:
        """A new shard of `count` rows of `dim` floats under `key`, filled row by row and then committed."""
        return ShardWriter(self, key, count, dim)

    def _fetch(self, rows_key: str, index: dict) -> tuple[Path, str | None]:
        """The shard's rows as a local file, and what is wrong with it (None when it verifies)."""
        path = self.storage.local(rows_key)
        if path is not None:
            return path, _verify(path, index)
        path = _mirror() / rows_key.replace("/", "--")  # shard names are random: one name, one content
        if path.is_file() and _verify(path, index) is None:
            return path, None  # downloaded (and verified) before by this process
        try:
            self.storage.get_file(rows_key, path)
        except FileNotFoundError:
            return path, "rows file is missing"
        return path, _verify(path, index)

    def _discard(self, index_key: str, problem: str) -> None:
        log.warning("feature cache: %s: %s; recomputing its items", self.storage.url(_rows_key(index_key)), problem)
        for k in (index_key, _rows_key(index_key)):
            self.storage.delete(k)


class ShardWriter:
    """Fill a new shard row by row through a memory map (memory stays flat), then commit it atomically."""

    def __init__(self, cache: FeatureCache, key: str, count: int, dim: int) -> None:
        self.storage = cache.storage
        name = uuid.uuid4().hex[:16]
        self.key = f"{key}/{name}.npy"
        local = self.storage.local(self.key)
        if local is not None:  # beside its final place, so committing is a rename
            local.parent.mkdir(parents=True, exist_ok=True)
            self._tmp = local.with_name(f".{name}.npy.tmp")
        else:  # a local scratch file, uploaded whole on commit
            self._tmp = _mirror() / f".{name}.npy.tmp"
        self.rows = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=np.float32, shape=(count, dim))
        self.written = 0

    def write_at(self, positions: np.ndarray | slice, rows: np.ndarray) -> None:
        """Put rows at their positions in the shard (a slice, or indices: rows may come back out of order from
        parallel workers). Each position must be written once before `commit`."""
        self.rows[positions] = rows
        self.written += len(rows)

    def commit(self, hashes: list[str]) -> Path:
        """Publish the shard (rows, then the index that makes it count); returns a local file holding its rows."""
        if self.written != len(hashes):
            raise ValueError(f"shard has {self.written} rows for {len(hashes)} hashes")
        dim = int(self.rows.shape[1])
        self.rows.flush()
        del self.rows
        index = {"hashes": hashes, "sha256": _sha256(self._tmp), "dim": dim}
        local = self.storage.local(self.key)
        if local is not None:
            os.replace(self._tmp, local)
        else:
            self.storage.put_file(self._tmp, self.key)
            local = self._tmp.with_name(self._tmp.name.lstrip(".").removesuffix(".tmp"))
            os.replace(self._tmp, local)
        self.storage.write_bytes(self.key.removesuffix(".npy") + ".json", json.dumps(index).encode())
        return local

    def abort(self) -> None:
        self.rows = None
        self._tmp.unlink(missing_ok=True)


def _rows_key(index_key: str) -> str:
    return index_key.removesuffix(".json") + ".npy"


def _verify(shard: Path, index: dict) -> str | None:
    if not shard.is_file():
        return "rows file is missing"
    if _sha256(shard) != index.get("sha256"):
        return "checksum mismatch (truncated or corrupted)"
    try:
        rows = np.load(shard, mmap_mode="r")
    except (ValueError, OSError) as exc:
        return f"unreadable ({exc})"
    if rows.ndim != 2 or len(rows) != len(index["hashes"]):
        return f"has {len(rows)} rows for {len(index['hashes'])} hashes"
    return None


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


@functools.cache
def _mirror() -> Path:
    """This process's local folder for shards of a remote cache (downloaded to read, or written before upload);
    removed when the process ends. Locations handed out point into it, so it lives as long as the process."""
    path = Path(tempfile.mkdtemp(prefix="headstart-shards-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
