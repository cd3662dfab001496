"""Large outputs as Parquet parts: `part-00000-of-00008.parquet`, ... in a folder or under any fsspec URL.

Each part holds a run of consecutive rows: `row` (the position in the whole output), `id` (the item: its file, or its
table and row) and `vector` (a fixed-size list of float32). Parts are written whole and atomically (see
`headstart.storage`), so a reader never sees half of one. Each part records, in its Parquet metadata, a fingerprint
of what it was made from (the backbone's cache key and the content of its items); a rerun after a crash finds the
parts that are finished and right, and makes only the others.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from headstart.errors import DataError
from headstart.storage import Storage, open_storage

ROWS_PER_PART = 100_000
FINGERPRINT = b"headstart.fingerprint"


def part_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}.parquet"


def fingerprint(key: str, hashes: Sequence[str]) -> str:
    """What a part is made of: the backbone (its cache key) and its items' content, in order."""
    h = hashlib.sha256(key.encode())
    for item in hashes:
        h.update(b"\0" + item.encode())
    return h.hexdigest()


def write_parts(
    out: str | Path,
    ids: Sequence[str],
    hashes: Sequence[str],
    key: str,
    features_for: Callable[[slice], np.ndarray],
    *,
    rows_per_part: int = ROWS_PER_PART,
) -> dict[str, list[str]]:
    """Write the output in parts of `rows_per_part` rows; `features_for(rows)` gives the vectors of a slice of rows.
    Parts already there with the same fingerprint are kept. Returns the part names `written` and `kept`."""
    storage = open_storage(out, check=True)
    count = max(1, math.ceil(len(ids) / rows_per_part))
    report: dict[str, list[str]] = {"written": [], "kept": []}
    for index in range(count):
        rows = slice(index * rows_per_part, min(len(ids), (index + 1) * rows_per_part))
        name = part_name(index, count)
        mark = fingerprint(key, hashes[rows])
        if _finished(storage, name, mark):
            report["kept"].append(name)
            continue
        _write_part(storage, name, rows, list(ids[rows]), features_for(rows), mark)
        report["written"].append(name)
    return report


def read_parts(out: str | Path) -> tuple[list[str], np.ndarray]:
    """Every row of a parts output, in order: the ids and the (N, dim) float32 vectors."""
    import pyarrow.parquet as pq

    storage = open_storage(out)
    names = [k for k in storage.list("", ".parquet") if k.startswith("part-")]
    if not names:
        raise DataError(f"{out}: no part-*.parquet files")
    counts = {n.rsplit("-of-", 1)[1] for n in names}
    if len(counts) != 1 or len(names) != int(counts.pop().split(".")[0]):
        raise DataError(f"{out}: the parts are incomplete or from different runs: {', '.join(names)}")
    ids: list[str] = []
    vectors = []
    for name in names:
        with storage.open(name) as f:
            table = pq.read_table(f)
        ids += table.column("id").to_pylist()
        vectors.append(_vectors(table))
    return ids, np.concatenate(vectors)


def _vectors(table) -> np.ndarray:  # noqa: ANN001 - a pyarrow Table
    column = table.column("vector").combine_chunks()
    return column.values.to_numpy(zero_copy_only=False).reshape(len(column), column.type.list_size)


def _finished(storage: Storage, name: str, mark: str) -> bool:
    import pyarrow.parquet as pq

    try:
        with storage.open(name) as f:
            metadata = pq.read_metadata(f).metadata or {}
    except FileNotFoundError:
        return False
    except Exception:  # unreadable: made again
        return False
    return metadata.get(FINGERPRINT) == mark.encode()


def _write_part(storage: Storage, name: str, rows: slice, ids: list[str], vectors: np.ndarray, mark: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = vectors.shape[1]
    table = pa.table(
        {
            "row": pa.array(np.arange(rows.start, rows.stop, dtype=np.int64)),
            "id": pa.array(ids, pa.string()),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), dim),
        }
    ).replace_schema_metadata({FINGERPRINT: mark.encode()})
    with tempfile.TemporaryDirectory(prefix="headstart-part-") as tmp:
        local = Path(tmp) / name
        pq.write_table(table, local)
        storage.put_file(local, name)
