"""A 2-process CPU DDP fit (gloo), launched the way a user launches it: `headstart fit --devices 2
--distributed-strategy ddp`, which Fabric re-runs as a second process; with gradient accumulation (gradients
synchronised once per step)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import headstart as hs
from tests.finetune.ft_helpers import TINY_CNN

pytestmark = pytest.mark.slow  # two processes (gloo): in the slow set, which CI runs too


def test_two_process_ddp_fit_saves_one_consistent_bundle(digits_folder, tmp_path):
    out = tmp_path / "ddp"
    command = [
        str(Path(sys.executable).parent / "headstart"), "fit", digits_folder, "--out", str(out),
        "--backbone", TINY_CNN, "--strategy", "finetune", "--epochs", "3", "--lr", "0.03", "--val-size", "0.25",
        "--batch-size", "4", "--accumulate", "2", "--no-baseline", "--format", "json",
        "--devices", "2", "--distributed-strategy", "ddp", "--accelerator", "cpu", "--set", "num_workers=0",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)  # only rank 0 reports
    history = report["finetune"]["history"]
    assert report["finetune"]["world_size"] == 2
    assert history[-1]["train_loss"] < history[0]["train_loss"]

    from safetensors.torch import load_file

    state = json.loads((out / "checkpoint" / "checkpoint.json").read_text())
    tensors = load_file(str(out / "checkpoint" / state["state_file"]))
    rng = tensors["rng/torch"]
    assert rng.shape[0] == 2 and not torch.equal(rng[0], rng[1])  # each process's own random state

    model = hs.load(out)
    weights = load_file(str(out / "backbone.safetensors"))
    prefix = "module/net/encoder."
    saved = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
    # the checkpoint is the scored run's; the bundle holds the model trained again, by both processes, on every label
    assert report["n_train"] == 60 and report["finetune"]["refit_epochs"] == report["finetune"]["best_epoch"]
    assert set(weights) == set(saved) and not all(torch.equal(weights[k], saved[k]) for k in weights)
    test = report["tasks"]["label"]
    data = hs.load_dataset(digits_folder)
    predicted = model.predict(data)
    # trained on these 60 by two processes: well above chance (0.1) on them, and on the held-out 15 before refit
    assert len(predicted) == 60 and np.mean(np.asarray(predicted) == np.asarray(data.labels)) >= 0.4
    assert test["accuracy"] >= 0.3
    assert test["n"] == 15
