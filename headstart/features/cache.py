"""An on-disk feature cache: one folder per backbone key, rows stored in shards keyed by item content hash.

A shard is `NAME.npy` (float32 rows) plus `NAME.json` (the content hash of each row and the sha256 of the .npy);
the .json is written last, so a shard without it never counts. Every shard is verified before its rows are used:
a truncated or corrupted file is reported, deleted and its items extracted again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from headstart.paths import atomic_file, cache_root

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Location:
    shard: Path
    row: int


class FeatureCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else cache_root() / "features"

    def folder(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str, hashes: list[str]) -> dict[str, Location]:
        """Locations of the wanted hashes that are cached in verified shards."""
        wanted = set(hashes)
        found: dict[str, Location] = {}
        folder = self.folder(key)
        if not folder.is_dir():
            return found
        for index_path in sorted(folder.glob("*.json")):
            try:
                index = json.loads(index_path.read_text())
                rows = index["hashes"]
            except (OSError, ValueError, KeyError, TypeError):
                self._discard(index_path, "unreadable index")
                continue
            useful = [h for h in rows if h in wanted and h not in found]
            if not useful:
                continue
            shard = index_path.with_suffix(".npy")
            problem = _verify(shard, index)
            if problem:
                self._discard(index_path, problem)
                continue
            for row, h in enumerate(rows):
                if h in wanted and h not in found:
                    found[h] = Location(shard, row)
        return found

    def writer(self, key: str, count: int, dim: int) -> ShardWriter:
        return ShardWriter(self.folder(key), count, dim)

    def _discard(self, index_path: Path, problem: str) -> None:
        log.warning("feature cache: %s: %s; recomputing its items", index_path.with_suffix(".npy"), problem)
        for p in (index_path, index_path.with_suffix(".npy")):
            p.unlink(missing_ok=True)


class ShardWriter:
    """Fill a new shard row by row through a memory map (memory stays flat), then commit it atomically."""

    def __init__(self, folder: Path, count: int, dim: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        name = uuid.uuid4().hex[:16]
        self.path = folder / f"{name}.npy"
        self._tmp = folder / f".{name}.npy.tmp"
        self.rows = np.lib.format.open_memmap(self._tmp, mode="w+", dtype=np.float32, shape=(count, dim))
        self.written = 0

    def write(self, rows: np.ndarray) -> None:
        self.rows[self.written : self.written + len(rows)] = rows
        self.written += len(rows)

    def commit(self, hashes: list[str]) -> Path:
        if self.written != len(hashes):
            raise ValueError(f"shard has {self.written} rows for {len(hashes)} hashes")
        dim = int(self.rows.shape[1])
        self.rows.flush()
        del self.rows
        os.replace(self._tmp, self.path)
        index = {"hashes": hashes, "sha256": _sha256(self.path), "dim": dim}
        with atomic_file(self.path.with_suffix(".json")) as f:
            json.dump(index, f)
        return self.path

    def abort(self) -> None:
        self.rows = None
        self._tmp.unlink(missing_ok=True)


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
