"""Dynamic micro-batching: requests wait in one queue; one worker takes up to `max_batch_size` items (or what came
within `max_wait_ms`), runs one prediction in its own thread, and answers each request with its rows.

A batch waits at most `max_wait_ms` from the later of its oldest request's arrival and the end of the previous
batch. A full queue refuses new work at once (`QueueFull`, answered 429 with Retry-After) instead of letting latency
grow without bound; a request whose caller gave up (timeout) is dropped before its batch runs. `close` refuses new
work and finishes everything queued, so a shutdown answers every request already accepted.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from headstart.errors import HeadstartError

Result = dict[str, np.ndarray]  # task -> probabilities, one row per item


class QueueFull(Exception):
    """More items are waiting than the queue takes (`max_queue`)."""


class Closed(Exception):
    """The server is shutting down and takes no new work."""


@dataclass
class _Job:
    items: list[Any]
    future: asyncio.Future
    queued: float = field(default_factory=time.perf_counter)


class MicroBatcher:
    """One queue, one worker, one prediction thread. `run(items)` must return task -> (len(items), classes)."""

    def __init__(
        self,
        run: Callable[[list[Any]], Result],
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self.run = run
        self.max_batch_size = max(1, max_batch_size)
        self.max_wait = max(0.0, max_wait_ms) / 1000
        self.max_queue = max_queue
        self.on_batch = on_batch or (lambda n: None)
        self._jobs: deque[_Job] = deque()
        self._queued_items = 0
        self._wake: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._pool: ThreadPoolExecutor | None = None
        self._closed = False
        self._free_since = 0.0

    @property
    def depth(self) -> int:
        """Items waiting for a batch (the ones being predicted are not counted)."""
        return self._queued_items

    def start(self) -> None:
        self._wake = asyncio.Event()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="headstart-predict")
        self._worker = asyncio.get_running_loop().create_task(self._loop())

    async def predict(self, items: list[Any], timeout: float | None = None) -> Result:
        """Queue `items` and wait for their rows; raises QueueFull, Closed, TimeoutError or the model's error."""
        if self._closed or self._wake is None:
            raise Closed("the server is shutting down")
        if self._queued_items + len(items) > self.max_queue and self._queued_items:
            raise QueueFull(f"{self._queued_items} items are queued; the queue takes {self.max_queue} (--max-queue)")
        job = _Job(list(items), asyncio.get_running_loop().create_future())
        self._jobs.append(job)
        self._queued_items += len(job.items)
        self._wake.set()
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout)
        except (TimeoutError, asyncio.TimeoutError, asyncio.CancelledError):
            job.future.cancel()  # the worker skips it if its batch has not started
            raise

    async def close(self) -> None:
        """Refuse new work, answer everything queued, then stop the worker and its thread."""
        self._closed = True
        if self._wake is not None:
            self._wake.set()
        if self._worker is not None:
            await self._worker
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    async def _loop(self) -> None:
        assert self._wake is not None
        while True:
            if not self._jobs:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            # wait from the later of: the oldest job's arrival, the end of the last batch. Requests that queued
            # while a batch ran would otherwise go alone at once, just before the clients that batch answered
            # send their next ones (a 1, 15, 1, 15... rhythm under 16 steady clients).
            deadline = max(self._jobs[0].queued, self._free_since) + self.max_wait
            while self._queued_items < self.max_batch_size and not self._closed:
                left = deadline - time.perf_counter()
                if left <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), left)
                except (TimeoutError, asyncio.TimeoutError):
                    break
            await self._run_batch(self._take())
            self._free_since = time.perf_counter()

    def _take(self) -> list[_Job]:
        """Whole jobs, oldest first, up to `max_batch_size` items (a larger job goes alone); given-up jobs dropped."""
        batch: list[_Job] = []
        size = 0
        while self._jobs:
            job = self._jobs[0]
            if batch and size + len(job.items) > self.max_batch_size:
                break
            self._jobs.popleft()
            self._queued_items -= len(job.items)
            if not job.future.done():
                batch.append(job)
                size += len(job.items)
        return batch

    async def _run_batch(self, jobs: list[_Job]) -> None:
        if not jobs:
            return
        try:
            results = await self._predict(jobs)
        except Exception as exc:
            if len(jobs) == 1:
                _answer(jobs[0], exc)
            else:  # one bad item must not fail its neighbours: answer each request on its own
                for job in jobs:
                    await self._run_batch([job])
            return
        for job, result in zip(jobs, results, strict=True):
            _answer(job, result)

    async def _predict(self, jobs: list[_Job]) -> list[Result]:
        """One model call per kind of item in the batch (a file path and an array do not mix), split per job."""
        items = [item for job in jobs for item in job.items]
        groups: dict[str, list[int]] = {}
        for i, item in enumerate(items):
            groups.setdefault(type(item).__name__, []).append(i)
        loop = asyncio.get_running_loop()
        rows: list[dict[str, np.ndarray]] = [{} for _ in items]
        for positions in groups.values():
            self.on_batch(len(positions))
            out = await loop.run_in_executor(self._pool, self.run, [items[i] for i in positions])
            for task, proba in out.items():
                if len(proba) != len(positions):
                    raise HeadstartError(f"the model answered {len(proba)} rows for {len(positions)} items")
                for row, i in zip(proba, positions, strict=True):
                    rows[i][task] = row
        results, start = [], 0
        for job in jobs:
            part = rows[start : start + len(job.items)]
            results.append({task: np.stack([r[task] for r in part]) for task in part[0]})
            start += len(job.items)
        return results


def _answer(job: _Job, outcome: Any) -> None:
    if job.future.done():
        return
    if isinstance(outcome, BaseException):
        job.future.set_exception(outcome)
    else:
        job.future.set_result(outcome)
