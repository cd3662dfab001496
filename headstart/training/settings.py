"""The engine's own settings and error: what Lightning Fabric runs on, and a run that cannot go on."""

from __future__ import annotations

from dataclasses import dataclass

from headstart.errors import HeadstartError

BAR_REFRESH_S = 1.0  # a progress bar reads the running loss from the device at most this often (and at the end)


class TrainingError(HeadstartError):
    """A training run that cannot go on: it diverged, its checkpoint was written under other settings or by another
    version, or Fabric cannot run the device set-up asked for. The CLI prints the message on one line."""


@dataclass
class DistributedConfig:
    """Passed through to `lightning.fabric.Fabric`."""

    accelerator: str = "auto"
    devices: int | str = 1
    num_nodes: int = 1
    distributed_strategy: str = "auto"  # Fabric's strategy: auto, ddp, ddp_spawn, fsdp, ...
    precision: str | None = None  # e.g. 32-true, bf16-mixed, 16-mixed; None: Fabric's default
