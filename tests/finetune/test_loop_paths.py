"""The loop's fast paths change speed, never results: the memory layout chosen per device, DataLoader workers kept
alive across epochs, losses kept on the device, and a divergence caught once per epoch."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from headstart.backbones import create_backbone
from headstart.backbones.base import preferred_memory_format
from headstart.errors import HeadstartError
from headstart.finetune.config import FinetuneConfig
from headstart.finetune.data import EpochBatches, loader
from headstart.finetune.net import Objective
from headstart.finetuning import finetune
from tests.finetune.ft_helpers import FAST, TINY_CNN


def test_channels_last_on_the_cpu_and_for_16_bit_only_on_gpus():
    assert preferred_memory_format(torch.device("cpu"), half_precision=False) == torch.channels_last
    assert preferred_memory_format(torch.device("cuda"), half_precision=False) == torch.contiguous_format
    assert preferred_memory_format(torch.device("cuda"), half_precision=True) == torch.channels_last


def test_the_memory_layout_changes_speed_not_features(monkeypatch):
    bb = create_backbone(TINY_CNN)
    batch = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    conv = next(m for m in bb.module.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        channels_last = bb.embed(batch)
    monkeypatch.setattr("headstart.backbones.base.preferred_memory_format", lambda *a, **k: torch.contiguous_format)
    bb.place("cpu")  # as on a GPU in float32
    assert bb.memory_format == torch.contiguous_format and conv.weight.is_contiguous()
    with torch.no_grad():
        plain = bb.embed(batch)
    torch.testing.assert_close(plain, channels_last, rtol=1e-5, atol=1e-5)


class _WhoServes(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 6

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, np.ndarray]:
        epoch, i = key
        return torch.tensor([os.getpid(), epoch, i]), np.zeros(1, dtype=np.int64)


class _Stack:
    def collate(self, rows: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack(rows)


def test_one_loader_serves_every_epoch_from_the_same_workers():
    batches = EpochBatches()
    batch_loader = loader(_WhoServes(), batches, _Stack(), 2)  # type: ignore[arg-type]
    seen = []
    for epoch in range(3):
        batches.set_epoch(epoch, [[0, 1], [2, 3], [4, 5]])
        rows = torch.cat([x for x, _ in batch_loader])
        assert rows[:, 1].tolist() == [epoch] * 6 and rows[:, 2].tolist() == list(range(6))
        seen.append(set(rows[:, 0].tolist()))
    assert os.getpid() not in seen[0] and len(seen[0]) == 2
    assert seen[0] == seen[1] == seen[2]  # no new worker processes per epoch


def test_worker_processes_change_nothing_in_a_run(digits60):
    """Augmentation in 2 persistent workers, validation and precise BatchNorm loaders included (random init: the
    BatchNorms train), gives exactly the run that no workers give."""
    options = {**FAST, "backbone": TINY_CNN + "&init=random", "epochs": 2, "lr": 1e-2, "val_size": 0.25}
    runs = [finetune(digits60, **{**options, "num_workers": n}) for n in (0, 2)]
    h0, h2 = (r.report["finetune"]["history"] for r in runs)
    for a, b in zip(h0, h2):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_accuracy"] == b["val_accuracy"]
    w0, w2 = (r.backbone.module.state_dict() for r in runs)
    assert all(torch.allclose(w0[k].float(), w2[k].float(), atol=1e-6) for k in w0)


def test_missing_labels_count_for_nothing_without_a_wait_on_the_device():
    objective = Objective(FinetuneConfig.from_options(), ["a"], [None])
    logits = torch.randn(4, 3, requires_grad=True)
    partial = objective([logits], [torch.tensor([0, -1, 2, -1])])
    expected = torch.nn.functional.cross_entropy(logits[[0, 2]], torch.tensor([0, 2]))
    torch.testing.assert_close(partial, expected)
    none = objective([logits], [torch.full((4,), -1)])
    none.backward()
    assert float(none.detach()) == 0.0 and torch.isfinite(logits.grad).all() and float(logits.grad.abs().sum()) == 0.0


def test_a_diverging_run_stops_with_a_clear_error(digits60):
    with pytest.raises(HeadstartError, match=r"diverged in epoch 1 .*lower --lr"):
        finetune(digits60, backbone=TINY_CNN, epochs=1, lr=1e30, val_size=0, grad_clip=None, **FAST)


def _optimizer_steps(out) -> set[float]:
    import json

    from safetensors.torch import load_file

    state = json.loads((out / "checkpoint" / "checkpoint.json").read_text())
    tensors = load_file(str(out / "checkpoint" / state["state_file"]))
    return {float(v) for k, v in tensors.items() if k.endswith("/step")}


def test_accumulation_takes_one_optimizer_step_per_effective_batch(digits60, tmp_path):
    """45 training items, batch 8 x accumulate 4: one effective batch of 32 per epoch (the short rest dropped, as
    any short last batch is), so 2 optimizer steps in 2 epochs; batch 8 alone takes 5 per epoch."""
    options = {**FAST, "backbone": TINY_CNN, "epochs": 2, "lr": 1e-2, "val_size": 0, "strategy": "finetune"}
    accumulated = finetune(digits60, **{**options, "batch_size": 8, "accumulate": 4, "out": tmp_path / "acc"})
    finetune(digits60, **{**options, "batch_size": 8, "out": tmp_path / "plain"})
    assert _optimizer_steps(tmp_path / "acc") == {2.0} and _optimizer_steps(tmp_path / "plain") == {10.0}
    history = accumulated.report["finetune"]["history"]
    assert all(np.isfinite(r["train_loss"]) for r in history)
    assert accumulated.report["finetune"]["config"]["loop"]["accumulate"] == 4


def test_accumulation_cuts_each_step_into_batches():
    from headstart.finetune.data import accumulation_batches

    batches, places = accumulation_batches([[0, 1, 2, 3, 4], [5, 6]], batch_size=2)
    assert batches == [[0, 1], [2, 3], [4], [5, 6]]
    assert [(p.step, p.first, p.last) for p in places] == [(0, 1, 0), (0, 0, 0), (0, 0, 1), (1, 1, 1)]
    assert [p.share for p in places] == [0.4, 0.4, 0.2, 1.0]
