"""Checkpoints of a run, written at the end of every epoch, crash-safe and pickle-free.

A checkpoint folder holds `state-E.safetensors` (every named module, every named optimizer's tensors, each
process's torch random state), optional snapshots such as `best-E.safetensors` (weights kept aside, e.g. those of
the best validation epoch) and `checkpoint.json` (format version, epoch, history, the caller's own state, optimizer
settings and scalars, Python and NumPy random states, the settings of the run). Each file is written to a
temporary name and renamed into place; `checkpoint.json` goes last and names the tensor files, so a run killed at
any moment leaves either the previous checkpoint or the new one, never a mixture. A checkpoint only resumes under
the settings that wrote it.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from headstart.paths import atomic_file
from headstart.training.settings import TrainingError

STATE = "checkpoint.json"
FORMAT_VERSION = 2  # 1: before fine-tuning and pretraining shared this checkpointer (not resumable)


@dataclass
class Restored:
    """The last checkpoint, read back: `modules`/`optimizers`/`snapshots` by the names they were saved under."""

    epoch: int  # epochs completed
    history: list[dict[str, Any]]
    state: dict[str, Any]  # the caller's own JSON state
    modules: dict[str, dict[str, torch.Tensor]]
    optimizers: dict[str, dict[str, Any]]  # torch optimizer state dicts
    snapshots: dict[str, dict[str, torch.Tensor]]
    rng_states: torch.Tensor  # (world_size, n) torch random states, one row per process
    world_size: int
    python_rng: Any
    numpy_rng: Any

    def load_into(self, modules: dict[str, torch.nn.Module], optimizers: dict[str, Any]) -> None:
        for name, module in modules.items():
            module.load_state_dict(self.modules[name])
        for name, optimizer in optimizers.items():
            optimizer.load_state_dict(self.optimizers[name])

    def restore_rng(self, rank: int, world_size: int) -> bool:
        """Put back this process's random states; False (leaving them alone) if the number of processes changed."""
        if self.world_size != world_size:
            return False
        torch.set_rng_state(self.rng_states[rank].clone())
        version, internal, gauss = self.python_rng
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = self.numpy_rng
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
        return True


class Checkpointer:
    """Checkpoints in `folder` (None: none) for a run defined by `config` (JSON); keys named in `may_change` (at any
    depth) may differ on resume, as they do not change the result (e.g. DataLoader workers)."""

    def __init__(self, folder: Path | None, config: dict[str, Any], fabric: Any, *, may_change: tuple = ()) -> None:
        self.folder, self.fabric, self.may_change = folder, fabric, set(may_change)
        self.config = json.loads(json.dumps(config, default=str))  # as it reads back (tuples as lists, ...)

    def load(self) -> Restored | None:
        """The last checkpoint, or None if there is none; refuses one written under other settings."""
        from safetensors.torch import load_file

        payload = read_json(self.folder)
        if payload is None:
            return None
        self._check(payload)
        tensors = load_file(str(self.folder / payload["state_file"]))
        modules = {name: _part(tensors, f"module/{name}/") for name in payload["modules"]}
        optimizers = {
            name: unflatten_optimizer(_part(tensors, f"optim/{name}/"), rest)
            for name, rest in payload["optimizers"].items()
        }
        snapshots = {name: load_file(str(self.folder / file)) for name, file in payload["snapshots"].items()}
        return Restored(
            epoch=int(payload["epoch"]),
            history=list(payload["history"]),
            state=dict(payload["state"]),
            modules=modules,
            optimizers=optimizers,
            snapshots=snapshots,
            rng_states=tensors["rng/torch"],
            world_size=int(payload["world_size"]),
            python_rng=payload["rng"]["python"],
            numpy_rng=payload["rng"]["numpy"],
        )

    def save(
        self,
        epoch: int,
        history: list[dict[str, Any]],
        modules: dict[str, torch.nn.Module],
        optimizers: dict[str, Any],
        *,
        state: dict[str, Any] | None = None,
        snapshots: dict[str, tuple[int, dict[str, torch.Tensor]]] | None = None,
    ) -> None:
        """Called by every process (each one's random state is gathered); process 0 writes. `snapshots`: name ->
        (the epoch it was taken at, tensors), written once per epoch tag; a name not given keeps its last file."""
        if self.folder is None:
            return
        f = self.fabric
        rng = f.all_gather(torch.get_rng_state()) if f.world_size > 1 else torch.get_rng_state()
        if f.global_rank == 0:
            tensors: dict[str, torch.Tensor] = {"rng/torch": rng.reshape(f.world_size, -1)}
            for name, module in modules.items():
                tensors.update({f"module/{name}/{k}": v for k, v in module.state_dict().items()})
            optim_json = {}
            for name, optimizer in optimizers.items():
                flat, optim_json[name] = flatten_optimizer(optimizer.state_dict())
                tensors.update({f"optim/{name}/{k}": v for k, v in flat.items()})
            payload = {"epoch": epoch, "history": history, "state": state or {}, "modules": list(modules),
                       "optimizers": optim_json, "world_size": int(f.world_size)}  # fmt: skip
            self._write(tensors, payload, snapshots or {})
        if f.world_size > 1:
            f.barrier()

    def _write(
        self,
        tensors: dict[str, torch.Tensor],
        payload: dict[str, Any],
        snapshots: dict[str, tuple[int, dict[str, torch.Tensor]]],
    ) -> None:
        """The tensor files first, `checkpoint.json` last (it names them), then the files no longer named."""
        from safetensors.torch import save_file

        folder = self.folder
        folder.mkdir(parents=True, exist_ok=True)
        state_file = f"state-{payload['epoch']}.safetensors"
        atomic_safetensors(save_file, tensors, folder / state_file)
        previous = read_json(folder, check_version=False) or {}
        files = dict(previous.get("snapshots") or {})
        for name, (tag, snapshot) in snapshots.items():
            files[name] = f"{name}-{tag}.safetensors"
            if not (folder / files[name]).exists():
                atomic_safetensors(save_file, snapshot, folder / files[name])
        payload = {
            "format_version": FORMAT_VERSION,
            **payload,
            "state_file": state_file,
            "snapshots": files,
            "rng": {"python": python_rng(), "numpy": numpy_rng()},
            "config": self.config,
        }
        with atomic_file(folder / STATE) as out:
            json.dump(payload, out, indent=1)
        for old in folder.glob("*.safetensors"):  # only now are older files unreferenced
            if old.name != state_file and old.name not in files.values():
                old.unlink(missing_ok=True)

    def _check(self, payload: dict[str, Any]) -> None:
        now, then = _flatten(self.config), _flatten(payload["config"])
        changed = sorted(
            k for k in {**now, **then} if now.get(k) != then.get(k) and k.rsplit(".", 1)[-1] not in self.may_change
        )
        if changed:
            raise TrainingError(
                f"{self.folder}: the checkpoint was written with other settings ({', '.join(changed)}); "
                "resume with the same settings, or start over without --resume"
            )


def read_json(folder: Path | None, *, check_version: bool = True) -> dict[str, Any] | None:
    """`checkpoint.json` of `folder`, or None if there is none."""
    path = folder / STATE if folder is not None else None
    if path is None or not path.is_file():
        return None
    try:
        payload = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise TrainingError(f"{path}: unreadable checkpoint ({exc})") from None
    version = payload.get("format_version", 1)
    if check_version and version != FORMAT_VERSION:
        raise TrainingError(
            f"{path}: a checkpoint in format {version}, written by another version of headstart; this one resumes "
            f"format {FORMAT_VERSION} only: start over without --resume (or finish the run with that version)"
        )
    return payload


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """A torch optimizer state dict as (tensors for safetensors, everything else for JSON)."""
    tensors, scalars = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}/{key}"] = plain(value)
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


def python_rng() -> list[Any]:
    version, internal, gauss = random.getstate()
    return [version, list(internal), gauss]


def numpy_rng() -> list[Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]


def plain(t: torch.Tensor) -> torch.Tensor:
    """A detached, contiguous CPU copy (what safetensors writes)."""
    return t.detach().cpu().clone().contiguous()


def atomic_safetensors(save_file: Any, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """`save_file(tensors, path)` to a temporary name, synced, then renamed into place."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        save_file({k: plain(v) for k, v in tensors.items()}, str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _part(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}


def _flatten(config: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
