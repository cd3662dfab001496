"""Devices, DDP/FSDP, multi-node launch and mixed precision: Lightning Fabric's, set up from one config."""

from __future__ import annotations

from typing import Any

from headstart.backbones.base import Backbone
from headstart.training.settings import DistributedConfig, TrainingError


def make_fabric(config: DistributedConfig) -> Any:
    """A launched `lightning.fabric.Fabric` (with the `ddp` strategy, this starts the other processes, which run the
    caller's code again from the start)."""
    from lightning.fabric import Fabric

    d = config
    try:
        fabric = Fabric(
            accelerator=d.accelerator,
            devices=d.devices,
            num_nodes=d.num_nodes,
            strategy=d.distributed_strategy,
            precision=d.precision,
        )
    except (ValueError, TypeError, RuntimeError) as exc:  # Fabric's checks of the combination, e.g. FSDP on CPU
        given = (f"accelerator={d.accelerator}, devices={d.devices}, num_nodes={d.num_nodes}, "
                 f"strategy={d.distributed_strategy}, precision={d.precision}")  # fmt: skip
        raise TrainingError(f"Lightning Fabric cannot run with {given}: {exc}") from None
    fabric.launch()
    return fabric


def place_backbone(backbone: Backbone, fabric: Any) -> None:
    """The backbone on Fabric's device, in the memory layout its convolutions run fastest in at Fabric's precision
    (channels_last for 16-bit on a GPU or for the CPU, the plain layout for float32 on a GPU)."""
    precision = str(getattr(fabric.strategy.precision, "precision", "32-true"))
    backbone.place(fabric.device, half_precision="16" in precision)
