"""Checkpoints of a run, written at the end of every epoch, crash-safe and pickle-free.

A checkpoint folder holds `state-E.safetensors` (the network, the optimizer's tensors, each process's torch random
state), `best-E.safetensors` (the network at the best validation epoch so far) and `checkpoint.json` (epoch,
history, early-stopping state, optimizer settings and scalar state, Python and NumPy random states). Each file is
written to a temporary name and renamed into place; `checkpoint.json` goes last and names the tensor files, so a
run killed at any moment leaves either the previous checkpoint or the new one, never a mixture.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headstart.errors import HeadstartError
from headstart.paths import atomic_file

STATE = "checkpoint.json"


@dataclass
class LoopState:
    """Everything about a run's progress that is not a tensor."""

    epoch: int = 0  # epochs completed
    history: list[dict[str, Any]] = field(default_factory=list)
    best_epoch: int | None = None
    best_score: list[float] | None = None  # (mean validation accuracy, -validation loss)
    stale: int = 0
    finished: bool = False


def save(
    folder: Path,
    loop: LoopState,
    net_state: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    rng_states: torch.Tensor,
    best_state: dict[str, torch.Tensor] | None,
    config: dict[str, Any],
) -> None:
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    previous = read_json(folder)
    tensors = {f"model/{k}": v for k, v in net_state.items()}
    optim_tensors, optim_json = flatten_optimizer(optimizer.state_dict())
    tensors.update({f"optim/{k}": v for k, v in optim_tensors.items()})
    tensors["rng/torch"] = rng_states
    state_file = f"state-{loop.epoch}.safetensors"
    _atomic_safetensors(save_file, tensors, folder / state_file)

    best_file = previous.get("best_file") if previous else None
    if best_state is not None:
        best_file = f"best-{loop.best_epoch}.safetensors"
        if not (folder / best_file).exists():
            _atomic_safetensors(save_file, {k: _plain(v) for k, v in best_state.items()}, folder / best_file)
    payload = {
        "loop": loop.__dict__,
        "state_file": state_file,
        "best_file": best_file,
        "optimizer": optim_json,
        "rng": {"python": _python_rng(), "numpy": _numpy_rng()},
        "world_size": int(rng_states.shape[0]),
        "config": config,
    }
    with atomic_file(folder / STATE) as f:
        json.dump(payload, f, indent=1)
    for old in folder.glob("*.safetensors"):  # only now are older files unreferenced
        if old.name not in (state_file, best_file):
            old.unlink(missing_ok=True)


@dataclass
class Restored:
    loop: LoopState
    net_state: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    rng_states: torch.Tensor
    best_state: dict[str, torch.Tensor] | None
    world_size: int
    python_rng: Any
    numpy_rng: Any


def load(folder: Path, config: dict[str, Any]) -> Restored | None:
    """The last checkpoint in `folder`, or None if there is none; refuses one written under other settings."""
    from safetensors.torch import load_file

    payload = read_json(folder)
    if payload is None:
        return None
    if _comparable(payload["config"]) != _comparable(config):
        changed = sorted(
            f"{part}.{k}"
            for part, values in config.items()
            for k, v in values.items()
            if payload["config"].get(part, {}).get(k) != v and k not in _MAY_CHANGE
        )
        raise HeadstartError(
            f"{folder}: the checkpoint was written with other settings ({', '.join(changed)}); "
            "resume with the same settings, or start over without --resume"
        )
    tensors = load_file(str(folder / payload["state_file"]))
    net = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
    optim = unflatten_optimizer(
        {k.removeprefix("optim/"): v for k, v in tensors.items() if k.startswith("optim/")}, payload["optimizer"]
    )
    best = load_file(str(folder / payload["best_file"])) if payload.get("best_file") else None
    return Restored(
        loop=LoopState(**payload["loop"]),
        net_state=net,
        optimizer=optim,
        rng_states=tensors["rng/torch"],
        best_state=best,
        world_size=int(payload["world_size"]),
        python_rng=payload["rng"]["python"],
        numpy_rng=payload["rng"]["numpy"],
    )


def read_json(folder: Path) -> dict[str, Any] | None:
    path = folder / STATE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise HeadstartError(f"{path}: unreadable checkpoint ({exc})") from None


# Settings that may differ between the interrupted run and its resumption without changing the result.
_MAY_CHANGE = {"num_workers"}


def _comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {part: {k: v for k, v in values.items() if k not in _MAY_CHANGE} for part, values in config.items()}


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A torch optimizer state dict as (tensors for safetensors, everything else for JSON)."""
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{key}"] = _plain(value)
            else:
                scalars[f"{index}/{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for flat, value in [*tensors.items(), *rest["scalars"].items()]:
        index, key = flat.split("/", 1)
        state.setdefault(int(index), {})[key] = value
    groups = [{k: (tuple(v) if k == "betas" else v) for k, v in g.items()} for g in rest["param_groups"]]
    return {"state": state, "param_groups": groups}


def torch_rng_state() -> torch.Tensor:
    return torch.get_rng_state()


def restore_rng(restored: Restored, rank: int, world_size: int) -> bool:
    """Put back this process's random states; False (leaving them alone) if the number of processes changed."""
    if restored.world_size != world_size:
        return False
    torch.set_rng_state(restored.rng_states[rank].clone())
    version, internal, gauss = restored.python_rng
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached = restored.numpy_rng
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    return True


def _python_rng() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def _numpy_rng() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def _plain(t: torch.Tensor) -> torch.Tensor:
    return t.detach().cpu().clone().contiguous()


def _atomic_safetensors(save_file: Any, tensors: dict[str, torch.Tensor], path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file({k: _plain(v) for k, v in tensors.items()}, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
