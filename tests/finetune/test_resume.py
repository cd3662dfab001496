"""Checkpoints and --resume: an interrupted run, resumed, ends exactly where an uninterrupted one does."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from headstart.finetuning import finetune
from headstart.training import checkpoint as ckpt
from tests.finetune.ft_helpers import FAST, TINY_CNN

SETTINGS = dict(backbone=TINY_CNN, epochs=3, lr=3e-2, augment="light", val_size=0.25, dropout=0.2, **FAST)


def test_optimizer_state_round_trips_without_pickle():
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW([{"params": [net.weight], "top_lr": 0.1}, {"params": [net.bias]}], lr=0.1)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    tensors, rest = ckpt.flatten_optimizer(opt.state_dict())
    json.dumps(rest)  # everything but tensors is JSON
    again = ckpt.unflatten_optimizer(tensors, json.loads(json.dumps(rest)))
    fresh = torch.optim.AdamW([{"params": [net.weight], "top_lr": 0.1}, {"params": [net.bias]}], lr=0.1)
    fresh.load_state_dict(again)
    for a, b in zip(opt.state_dict()["state"].values(), fresh.state_dict()["state"].values()):
        assert all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)


def test_resume_after_an_interruption_matches_an_uninterrupted_run(digits60, tmp_path, monkeypatch):
    straight = finetune(digits60, out=tmp_path / "straight", **SETTINGS)

    real = ckpt.Checkpointer.save
    calls = []

    def crash_after_first(*args, **kwargs):
        real(*args, **kwargs)
        calls.append(1)
        raise KeyboardInterrupt  # as if the run was stopped right after epoch 1's checkpoint

    monkeypatch.setattr(ckpt.Checkpointer, "save", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        finetune(digits60, out=tmp_path / "resumed", **SETTINGS)
    monkeypatch.setattr(ckpt.Checkpointer, "save", real)
    resumed = finetune(digits60, out=tmp_path / "resumed", resume=True, **SETTINGS)

    assert resumed.report["finetune"]["resumed_at_epoch"] == 1
    assert _without_time(resumed.report["finetune"]["history"]) == _without_time(straight.report["finetune"]["history"])
    assert resumed.metrics == straight.metrics
    a, b = straight.backbone.module.state_dict(), resumed.backbone.module.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_refuses_other_settings(digits60, tmp_path):
    finetune(digits60, out=tmp_path / "run", **{**SETTINGS, "epochs": 1})
    from headstart.errors import HeadstartError

    with pytest.raises(HeadstartError, match="other settings.*loop.lr"):
        finetune(digits60, out=tmp_path / "run", resume=True, **{**SETTINGS, "epochs": 1, "lr": 0.5})


def test_resume_refuses_a_checkpoint_of_an_older_format(digits60, tmp_path):
    folder = tmp_path / "run" / "checkpoint"
    folder.mkdir(parents=True)
    (folder / "checkpoint.json").write_text(json.dumps({"loop": {"epoch": 1}, "state_file": "state-1.safetensors"}))
    from headstart.errors import HeadstartError

    with pytest.raises(HeadstartError, match="checkpoint in format 1.*start over without --resume"):
        finetune(digits60, out=tmp_path / "run", resume=True, **{**SETTINGS, "epochs": 1})


def _without_time(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def _cli(folder: str, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from headstart.cli import main; main()",
        "fit",
        folder,
        "--out",
        str(out),
        "--backbone",
        TINY_CNN,
        "--strategy",
        "finetune",
        "--epochs",
        "4",
        "--lr",
        "0.03",
        "--val-size",
        "0.25",
        "--batch-size",
        "8",
        "--no-baseline",
        "--format",
        "json",
        "--set",
        "num_workers=0",
        *extra,
    ]


@pytest.mark.slow
def test_sigkill_then_resume_matches_an_uninterrupted_run(digits_folder, tmp_path):
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    straight = subprocess.run(_cli(digits_folder, tmp_path / "straight"), env=env, capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr[-2000:]

    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli(digits_folder, out), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    state = out / "checkpoint" / "checkpoint.json"
    deadline = time.monotonic() + 120
    while not state.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = json.loads(state.read_text())["epoch"]
    assert killed_at < 4, "the run finished before it could be killed"

    resumed = subprocess.run(_cli(digits_folder, out, "--resume"), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    a, b = json.loads(straight.stdout), json.loads(resumed.stdout)
    assert b["finetune"]["resumed_at_epoch"] == killed_at
    assert _without_time(a["finetune"]["history"]) == _without_time(b["finetune"]["history"])
    assert a["tasks"]["label"]["accuracy"] == b["tasks"]["label"]["accuracy"]
