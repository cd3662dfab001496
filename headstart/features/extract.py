"""Batched feature extraction: decoding in DataLoader workers, `torch.inference_mode`, a progress bar, rows streamed
into the on-disk cache so memory stays flat however many items there are."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headstart.backbones.base import Backbone
from headstart.data.dataset import Dataset, content_hash
from headstart.errors import DataError
from headstart.features.cache import FeatureCache
from headstart.features.device import extraction_device, to_device
from headstart.features.engine import Engine, current


class _Prepared(torch.utils.data.Dataset):
    def __init__(self, items: Sequence[Any], where: Sequence[str], backbone: Backbone) -> None:
        self.items, self.where, self.backbone = items, where, backbone

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> Any:
        try:
            return self.backbone.prepare(self.items[i])
        except Exception as exc:
            raise DataError(f"{self.where[i]}: cannot be read ({exc})") from None


def default_workers(backbone: Backbone) -> int:
    """Image decoding overlaps the forward pass in worker processes. Text tokenisation keeps up with a forward pass
    on the CPU in-process, but a GPU's forward outruns it, so with a GPU texts are tokenised in workers too."""
    cpus = os.cpu_count() or 1
    if cpus <= 2:
        return 1 if backbone.modality == "image" else 0
    gpu = extraction_device().type == "cuda"
    if backbone.modality == "image":
        return min(8 if gpu else 4, cpus - 1)
    return min(4, cpus - 1) if gpu else 0


def workers_for(backbone: Backbone, n_items: int, batch_size: int) -> int:
    """Workers only pay when decoding can overlap a later batch's forward pass: one batch or less is prepared here,
    with no process to fork (a server answering small requests from threads must not fork for each one)."""
    return default_workers(backbone) if n_items > batch_size else 0


def batch_order(backbone: Backbone, items: Sequence[Any]) -> list[int]:
    """Texts longest first, so each batch pads to similar lengths (as sentence-transformers does); else as given."""
    if backbone.modality == "text":
        return sorted(range(len(items)), key=lambda i: -len(items[i]))
    return list(range(len(items)))


def iter_batches(
    backbone: Backbone,
    items: Sequence[Any],
    where: Sequence[str],
    *,
    batch_size: int,
    num_workers: int,
    pin_memory: bool = False,
) -> Iterator[Any]:
    """Collated batches of `items`, in order, ready for `backbone.embed`."""
    getattr(backbone, "ready_to_prepare", lambda: None)()  # before the workers start, so they inherit it
    loader = torch.utils.data.DataLoader(
        _Prepared(items, where, backbone),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=backbone.collate,
        persistent_workers=False,
        prefetch_factor=2 if num_workers else None,
        pin_memory=pin_memory,
    )
    yield from loader


def extract_features(
    backbone: Backbone,
    data: Dataset | Sequence[Any],
    *,
    batch_size: int = 32,
    num_workers: int | None = None,
    cache: FeatureCache | bool = True,
    progress: bool = True,
    out: Path | None = None,
    engine: Engine | None = None,
) -> np.ndarray:
    """Embeddings of every item, shape (N, backbone.embed_dim), float32.

    Items already in the cache (same backbone spec, preprocessing, weights and item content) are read back; only the
    others go through the backbone. With `out`, the result is a memory-mapped .npy file written atomically.
    `engine` (default: `headstart.features.engine.current()`, this process) may run the backbone on Ray instead:
    same rows, same order.
    """
    engine = engine or current()
    parts = getattr(backbone, "parts", None)
    if parts:  # a concat: backbone: each part through its own cache, side by side
        kwargs = {"batch_size": batch_size, "num_workers": num_workers, "cache": cache, "progress": progress}
        kwargs |= {"engine": engine}
        joined = np.concatenate([extract_features(p, data, **kwargs) for p in parts], axis=1)
        return _assemble_all(joined, out)
    if not getattr(backbone, "cacheable", True):  # e.g. wide TF-IDF rows: cheaper to compute than to store
        cache = False
    items = list(data.items) if isinstance(data, Dataset) else list(data)
    where = list(data.where) if isinstance(data, Dataset) else [f"item #{i}" for i in range(len(items))]
    store = cache if isinstance(cache, FeatureCache) else (FeatureCache() if cache else None)
    hashes = [content_hash(item) for item in items]
    key = backbone.cache_key
    found = store.lookup(key, hashes) if store is not None else {}

    todo: dict[str, int] = {}
    for i, h in enumerate(hashes):
        if h not in found and h not in todo:
            todo[h] = i
    computed: dict[str, int] = {}
    fresh = None
    if todo:
        order = [list(todo.values())[j] for j in batch_order(backbone, [items[i] for i in todo.values()])]
        job = _Job(backbone, [items[i] for i in order], [where[i] for i in order], batch_size, progress)
        fresh = _run(job, [hashes[i] for i in order], num_workers, store, key, engine)
        computed = {hashes[i]: row for row, i in enumerate(order)}

    return _assemble(hashes, found, computed, fresh, backbone.embed_dim, out)


@dataclass(frozen=True)
class _Job:
    """Items to put through a backbone, in the order they go."""

    backbone: Backbone
    items: list[Any]
    where: list[str]
    batch_size: int
    progress: bool


def _run(
    job: _Job, hashes: list[str], num_workers: int | None, store: FeatureCache | None, key: str, engine: Engine
) -> np.ndarray:
    """The job's rows, into a new cache shard (committed at the end) or into memory."""
    from tqdm.auto import tqdm

    dim = job.backbone.embed_dim
    writer = store.writer(key, len(job.items), dim) if store is not None else None
    rows = writer.rows if writer is not None else np.empty((len(job.items), dim), np.float32)
    bar = tqdm(total=len(job.items), desc=f"embedding with {job.backbone.spec}", unit="item", disable=not job.progress)

    def put(positions: np.ndarray | slice, emb: np.ndarray) -> None:
        if writer is not None:
            writer.write_at(positions, emb)
        else:
            rows[positions] = emb
        bar.update(len(emb))

    try:
        if engine.name == "ray":
            from headstart.features.ray_engine import embed_on_ray

            embed_on_ray(job.backbone, job.items, job.where, engine=engine, batch_size=job.batch_size, on_rows=put)
        else:
            _embed_here(job, num_workers, put)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        bar.close()
    if writer is not None:
        shard = writer.commit(hashes)
        return np.load(shard, mmap_mode="r")  # the committed rows, read back lazily: memory stays flat
    return rows


def _embed_here(job: _Job, num_workers: int | None, put: Callable[[slice, np.ndarray], None]) -> None:
    """The job in this process: DataLoader workers decode, the backbone runs on the extraction device."""
    backbone = job.backbone
    workers = workers_for(backbone, len(job.items), job.batch_size) if num_workers is None else num_workers
    backbone.module.eval()
    device = extraction_device()
    home = next(iter(backbone.module.parameters()), torch.empty(0)).device
    backbone.place(device)
    done = 0
    try:
        with torch.inference_mode():
            batches = iter_batches(
                backbone,
                job.items,
                job.where,
                batch_size=job.batch_size,
                num_workers=workers,
                pin_memory=device.type == "cuda",
            )
            for batch in batches:
                emb = backbone.embed(to_device(batch, device)).float().cpu().numpy()
                put(slice(done, done + len(emb)), emb)
                done += len(emb)
    finally:
        backbone.place(home)  # callers (prediction, fine-tuning) find the backbone where it was


def _assemble(
    hashes: list[str], found: dict, computed: dict[str, int], fresh: np.ndarray | None, dim: int, out: Path | None
) -> np.ndarray:
    n = len(hashes)
    if out is None:
        result = np.empty((n, dim), np.float32)
        _fill(result, hashes, found, computed, fresh)
        return result
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        result = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=(n, dim))
        _fill(result, hashes, found, computed, fresh)
        result.flush()
        del result
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return np.load(out, mmap_mode="r")


def _assemble_all(rows: np.ndarray, out: Path | None) -> np.ndarray:
    """Rows computed elsewhere, returned as they are or written (atomically) to `out` as _assemble does."""
    if out is None:
        return rows.astype(np.float32, copy=False)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as f:
            np.save(f, rows.astype(np.float32, copy=False))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return np.load(out, mmap_mode="r")


def _fill(
    result: np.ndarray, hashes: list[str], found: dict, computed: dict[str, int], fresh: np.ndarray | None
) -> None:
    by_shard: dict[Path, tuple[list[int], list[int]]] = {}
    for i, h in enumerate(hashes):
        if h in computed:
            result[i] = fresh[computed[h]]
        else:
            loc = found[h]
            targets, rows = by_shard.setdefault(loc.shard, ([], []))
            targets.append(i)
            rows.append(loc.row)
    for shard, (targets, rows) in by_shard.items():
        result[np.asarray(targets)] = np.load(shard, mmap_mode="r")[np.asarray(rows)]
