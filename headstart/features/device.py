"""Where extraction runs: the device, and batches moved onto it whatever their container."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch


def extraction_device() -> torch.device:
    """`HEADSTART_DEVICE` when set (cpu, cuda, cuda:1, mps), else the first GPU if there is one, else the CPU."""
    name = os.environ.get("HEADSTART_DEVICE", "").strip()
    if name:
        return torch.device(name)
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")


def to_device(batch: Any, device: torch.device) -> Any:
    """A collated batch (a tensor, or a dict / list of them) moved to `device`."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):  # a dict, or a tokenizer's BatchEncoding (a UserDict)
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch
