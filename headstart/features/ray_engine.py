"""Feature extraction on Ray Data: decoding in tasks, one backbone per actor, batches streamed back to the caller.

The pipeline, for the items not already in the feature cache:

    from_items({idx, item, where})  ->  map_batches(decode)          tasks: read and preprocess each item (images,
                                                                     audio; texts are prepared in the actors)
                                    ->  map_batches(Embedder, ...)   actor pool: one backbone per actor, N actors,
                                                                     num_gpus each; collate + forward
                                    ->  iter_batches()               streamed to the caller as (idx, vectors)

Rows come back in whatever order the actors finish; each carries its `idx`, so the caller puts it in its place and
the output is row for row the single-process one. A killed actor is restarted and its batches run again (Ray Data's
actor pools retry without limit: `max_restarts=-1`, `max_task_retries=-1`); rows are placed by index, and a batch
that comes back twice is placed once.

`ray.init` joins the cluster `RAY_ADDRESS` names, or starts a local one. Ray is imported only here, only when used.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import socket
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from headstart.backbones.base import Backbone
from headstart.errors import DataError, HeadstartError
from headstart.features.device import extraction_device, to_device
from headstart.features.engine import Engine

DECODE_CPUS = 0.25  # what a decoding task asks for: they are short, and many run beside the actors


class EngineError(HeadstartError):
    """Ray is missing, or the cluster cannot be reached."""


def connect() -> Any:
    """The `ray` module, joined to a cluster: the one `RAY_ADDRESS` names, else a new local one. Once per process."""
    try:
        import ray
    except ImportError:
        raise EngineError("--engine ray needs Ray: pip install 'headstart[ray]'") from None
    if ray.is_initialized():
        return ray
    address = os.environ.get("RAY_ADDRESS") or None
    if address and not _reachable(address):
        raise EngineError(f"cannot join the Ray cluster at RAY_ADDRESS={address}: nothing answers there")
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        where = f"the Ray cluster at RAY_ADDRESS={address}" if address else "a local Ray cluster"
        raise EngineError(f"cannot join {where}: {_first_line(exc)}") from None
    return ray


def _reachable(address: str, timeout: float = 3.0) -> bool:
    """Whether something listens at a `host:port` (or `ray://host:port`) address, asked once with a short timeout:
    `ray.init` itself waits minutes for a cluster that is not there. Other forms (`auto`) are left to Ray."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return True
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def embed_on_ray(
    backbone: Backbone,
    items: Sequence[Any],
    where: Sequence[str],
    *,
    engine: Engine,
    batch_size: int,
    on_rows: Callable[[np.ndarray, np.ndarray], None],
) -> None:
    """Embed `items` on Ray; `on_rows(positions, vectors)` receives each finished batch (positions index `items`)."""
    ray = connect()
    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # the caller shows one bar; stdout stays clean for --format json
    context.print_on_execution_start = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # no per-job chatter ("execution finished", ...)
    named = all(isinstance(item, str) for item in items)  # paths or texts travel in the rows, read in the tasks
    # texts are prepared by the actors themselves: preparing one is nothing next to its forward pass, and decoding
    # tasks are processes that each import torch (measured: 3,000 sentences on 2 CPUs, 1 actor, 24.8 s with decoding
    # tasks against 8.2 s in one process)
    inline = named and backbone.modality == "text"
    cpus = _cpus_per_worker(ray, engine, decoding=not inline)
    rows = [{"idx": i, "where": w} for i, w in enumerate(where)]
    if named:
        rows = [{**row, "item": item} for row, item in zip(rows, items, strict=True)]
    data = ray.data.from_items(rows, override_num_blocks=_blocks(len(rows), batch_size, engine.workers))
    decoded = data
    if not inline:
        decoded = data.map_batches(
            _decode,
            fn_kwargs={"preparer": _without_weights(backbone), "items": None if named else list(items)},
            batch_size=batch_size,
            batch_format="numpy",
            num_cpus=DECODE_CPUS,
        )
    embedded = decoded.map_batches(
        Embedder,
        fn_constructor_args=(backbone, max(1, round(cpus))),
        batch_size=batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=engine.workers),
        num_cpus=cpus,
        num_gpus=engine.gpus_per_worker or None,
    )  # Ray Data restarts an actor that dies (max_restarts=-1) and reruns the batches it held (max_task_retries=-1)
    seen = np.zeros(len(items), dtype=bool)
    with warnings.catch_warnings():  # a job with fewer blocks than actors is fine, though Ray warns about it
        warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")
        try:
            for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
                idx, vectors = np.asarray(batch["idx"]), np.asarray(batch["vector"], dtype=np.float32)
                fresh = ~seen[idx]  # a batch run twice (a retry) is placed once
                seen[idx] = True
                if fresh.any():
                    on_rows(idx[fresh], vectors[fresh])
        except Exception as exc:
            raise _user_error(exc) from None
    if not seen.all():
        raise EngineError(f"Ray returned no features for {int((~seen).sum())} of {len(items)} items")


class Embedder:
    """One actor of the pool: holds the backbone on its device, and maps decoded batches to (idx, vector) rows."""

    def __init__(self, backbone: Backbone, threads: int) -> None:
        torch.set_num_threads(threads)
        self.backbone = backbone
        self.device = extraction_device()
        self.backbone.module.eval()
        self.backbone.place(self.device)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if "prepared" not in batch:  # texts: prepared here, not in decoding tasks
            batch = _decode(batch, self.backbone, None)
        prepared = [_as_prepared(p) for p in batch["prepared"]]
        with torch.inference_mode():
            emb = self.backbone.embed(to_device(self.backbone.collate(prepared), self.device))
        return {"idx": batch["idx"], "vector": emb.float().cpu().numpy()}


def _decode(batch: dict[str, np.ndarray], preparer: Backbone, items: Sequence[Any] | None) -> dict[str, Any]:
    """Read and preprocess each item of a batch (in a Ray task): what `backbone.prepare` gives, as numpy. The items
    are the batch's `item` column (paths, texts), or with `items` the in-memory objects the batch's `idx` point to."""
    preparer.ready_to_prepare()
    chosen = batch["item"] if items is None else [items[i] for i in batch["idx"]]
    prepared = []
    for item, w in zip(chosen, batch["where"], strict=True):
        try:
            p = preparer.prepare(str(item) if isinstance(item, np.str_) else item)
        except Exception as exc:
            raise DataError(f"{w}: cannot be read ({exc})") from None
        prepared.append(p.numpy() if isinstance(p, torch.Tensor) else p)
    return {"idx": batch["idx"], "prepared": _column(prepared)}


def _column(values: list[Any]) -> np.ndarray:
    """A batch column: stacked when every value is an array of one shape, else an object array of the values."""
    if values and all(isinstance(v, np.ndarray) for v in values) and len({v.shape for v in values}) == 1:
        return np.stack(values)
    column = np.empty(len(values), dtype=object)
    column[:] = values
    return column


def _as_prepared(value: Any) -> Any:
    """A decoded value back as `collate` expects it: a tensor for arrays, a str for texts."""
    if isinstance(value, np.ndarray) and value.dtype != object:
        return torch.from_numpy(np.array(value))  # a writable copy: Ray's batches are read-only views
    return str(value)


def _without_weights(backbone: Backbone) -> Backbone:
    """A copy of `backbone` for decoding tasks: its preprocessing without its network (a weightless stand-in takes
    the module's place), so that shipping it to every task does not ship the weights."""
    light = copy.copy(backbone)
    light.__dict__.update(_module=torch.nn.Identity(), _builder=None, _pending=[])
    inner = getattr(backbone, "backbone", None)  # a wrapper (e.g. source logits) prepares through its backbone
    if isinstance(inner, Backbone):
        light.__dict__["backbone"] = _without_weights(inner)
    return light


def _blocks(items: int, batch_size: int, workers: int) -> int:
    """How many blocks to cut the items into: a few batches each (a decoding task per block, so not one item each,
    which is Ray's default for small lists), and enough blocks to keep every actor busy and to stream."""
    batches = -(-items // batch_size)
    return max(1, -(-batches // 4), min(batches, 4 * workers))


def _cpus_per_worker(ray: Any, engine: Engine, *, decoding: bool = True) -> float:
    """CPUs each actor asks for: the engine's choice, or on CPU-only work the cluster's CPUs shared between the
    actors and the decoding tasks, if any (so that decoding is never starved of a CPU); 1 when actors run on GPUs."""
    if engine.cpus_per_worker is not None:
        return engine.cpus_per_worker
    if engine.gpus_per_worker:
        return 1.0
    total = float(ray.cluster_resources().get("CPU", 1.0))
    return max(DECODE_CPUS, (total - (2 * DECODE_CPUS if decoding else 0.0)) / engine.workers)


def _user_error(exc: BaseException) -> BaseException:
    """A failure inside Ray as the error a user can act on: a headstart error raised in a task or an actor (a
    DataError naming an unreadable item) comes back as itself, one line, without Ray's tracebacks around it. Ray
    hands the original over as text inside its own exception, so it is found there."""
    from headstart import errors

    found = re.search(r"headstart\.errors\.(\w+): (.+)", str(exc))
    kind = getattr(errors, found.group(1), None) if found else None
    if found and isinstance(kind, type) and issubclass(kind, HeadstartError):
        return kind(found.group(2).strip())
    return exc


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
