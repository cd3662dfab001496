"""Which engine runs feature extraction: this process (`local`, the default) or a Ray cluster (`ray`).

The choice reaches every extraction below a call without being threaded through each recipe: `api.embed`, `fit`,
`rank` and `diagnose` run their work inside `using(Engine("ray", workers=2))`, and `extract_features` asks
`current()` when it is given no engine of its own. A context variable, as `torch.inference_mode` is a context.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class Engine:
    """`name`: local or ray; with ray, `workers` actors each holding one backbone, `gpus_per_worker` GPUs each
    (fractions share a GPU between actors), and `cpus_per_worker` CPUs each (None: the cluster's CPUs shared out)."""

    name: str = "local"
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float | None = None

    def __post_init__(self) -> None:
        if self.name not in ENGINES:
            raise ValueError(f"engine {self.name!r} is not one of {', '.join(ENGINES)}")
        if self.workers < 1:
            raise ValueError(f"workers={self.workers}: give at least 1")
        if self.gpus_per_worker < 0:
            raise ValueError(f"gpus_per_worker={self.gpus_per_worker} is negative")


LOCAL = Engine()
_current: ContextVar[Engine] = ContextVar("headstart_engine", default=LOCAL)


def current() -> Engine:
    """The engine extraction uses here: the innermost `using`, else local."""
    return _current.get()


@contextlib.contextmanager
def using(engine: Engine | None) -> Iterator[Engine]:
    """Run the body's feature extraction on `engine` (None: leave the current one)."""
    if engine is None:
        yield current()
        return
    token = _current.set(engine)
    try:
        yield engine
    finally:
        _current.reset(token)


def engine_from(engine: str | None = None, workers: int | None = None, gpus_per_worker: float | None = None) -> Engine:
    """An Engine from the API's and CLI's keyword options; workers and GPUs only mean something with `ray`."""
    name = engine or "local"
    if name == "local" and (workers not in (None, 1) or gpus_per_worker):
        raise ValueError("workers and gpus_per_worker apply to engine='ray'")
    return Engine(name, workers=workers or 1, gpus_per_worker=gpus_per_worker or 0.0)
