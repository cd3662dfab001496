"""Pretraining scales through the same Fabric options as fine-tuning: a 2-process CPU DDP run (gloo), launched the
way a user launches it, trains, reduces its per-epoch figures over both processes and saves one backbone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import headstart as hs

pytestmark = pytest.mark.slow  # two processes (gloo): in the slow set, which CI runs too


def test_two_process_ddp_pretraining_saves_one_backbone(tmp_path):
    out = tmp_path / "ddp-ae"
    command = [
        str(Path(sys.executable).parent / "headstart"), "pretrain", "samples:digits", "--method", "autoencoder",
        "--out", str(out), "--epochs", "2", "--batch-size", "64", "--accelerator", "cpu", "--devices", "2",
        "--distributed-strategy", "ddp", "--format", "json",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)  # only rank 0 reports
    history = result["history"]
    assert len(history) == 2 and history[-1]["loss"] < history[0]["loss"]
    # each epoch's samples are summed over both processes: the whole pool, not one process's half
    assert history[0]["samples"] >= 1797 - 2 * 64
    from safetensors.torch import load_file

    state = json.loads((out / "checkpoint" / "checkpoint.json").read_text())
    assert state["world_size"] == 2
    rng = load_file(str(out / "checkpoint" / state["state_file"]))["rng/torch"]
    assert rng.shape[0] == 2 and not (rng[0] == rng[1]).all()  # each process's own random state
    manifest = json.loads((out / "headstart.json").read_text())
    assert manifest["pretrain"]["method"] == "autoencoder"
    x = hs.embed("samples:digits", backbone=f"local:{out}")
    assert x.shape == (1797, 32) and np.isfinite(x).all()
