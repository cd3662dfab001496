"""The training engine on its own: checkpoints round-trip named modules, optimizers, snapshots and the caller's
state; resuming refuses other settings and other formats; a diverging epoch and a device set-up Fabric refuses
are each one clear error."""

from __future__ import annotations

import json
import math

import pytest
import torch

from headstart.errors import HeadstartError
from headstart.training.checkpoint import Checkpointer
from headstart.training.epochs import EpochRunner
from headstart.training.fabric import make_fabric
from headstart.training.settings import DistributedConfig, TrainingError


@pytest.fixture(scope="module")
def fabric():
    return make_fabric(DistributedConfig(accelerator="cpu"))


def _trained() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW([{"params": [net.weight], "top_lr": 0.1}, {"params": [net.bias]}], lr=0.1)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    return net, opt


def test_a_checkpoint_round_trips_and_keeps_only_the_files_it_names(fabric, tmp_path):
    config = {"loop": {"lr": 0.1, "num_workers": 0}}
    net, opt = _trained()
    best = {k: v.clone() for k, v in net.state_dict().items()}
    saver = Checkpointer(tmp_path, config, fabric)
    saver.save(1, [{"epoch": 1}], {"net": net}, {"adamw": opt}, state={"stale": 0}, snapshots={"best": (1, best)})
    opt.step()
    saver.save(2, [{"epoch": 1}, {"epoch": 2}], {"net": net}, {"adamw": opt}, state={"stale": 1})
    assert sorted(p.name for p in tmp_path.glob("*.safetensors")) == ["best-1.safetensors", "state-2.safetensors"]
    assert not list(tmp_path.glob(".*"))  # no temporary file left behind

    restored = Checkpointer(tmp_path, {"loop": {"lr": 0.1, "num_workers": 2}}, fabric, may_change=("num_workers",))
    back = restored.load()
    assert back.epoch == 2 and back.history == [{"epoch": 1}, {"epoch": 2}] and back.state == {"stale": 1}
    assert all(torch.equal(back.snapshots["best"][k], best[k]) for k in best)
    fresh = torch.nn.Linear(3, 2)
    fresh_opt = torch.optim.AdamW([{"params": [fresh.weight], "top_lr": 0.1}, {"params": [fresh.bias]}], lr=0.1)
    back.load_into({"net": fresh}, {"adamw": fresh_opt})
    assert all(torch.equal(fresh.state_dict()[k], net.state_dict()[k]) for k in best)
    for a, b in zip(opt.state_dict()["state"].values(), fresh_opt.state_dict()["state"].values()):
        assert all(torch.equal(torch.as_tensor(a[k]), torch.as_tensor(b[k])) for k in a)
    torch.rand(5)  # moves the random state on
    assert back.restore_rng(0, 1) and torch.equal(torch.get_rng_state(), back.rng_states[0])
    assert not back.restore_rng(0, 2)  # another number of processes: the caller seeds afresh


def test_resuming_refuses_other_settings_and_other_formats(fabric, tmp_path):
    net, opt = _trained()
    Checkpointer(tmp_path / "a", {"settings": {"lr": 0.1}}, fabric).save(1, [], {"net": net}, {"adamw": opt})
    with pytest.raises(TrainingError, match=r"other settings \(settings.lr\).*without --resume"):
        Checkpointer(tmp_path / "a", {"settings": {"lr": 0.2}}, fabric).load()
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "checkpoint.json").write_text(json.dumps({"epoch": 1, "state_file": "state-1.safetensors"}))
    with pytest.raises(TrainingError, match="format 1.*start over without --resume"):
        Checkpointer(tmp_path / "b", {}, fabric).load()
    assert Checkpointer(tmp_path / "none", {}, fabric).load() is None


def test_a_diverging_epoch_is_one_clear_error_naming_the_run(fabric):
    runner = EpochRunner(fabric, epochs=2, seed=0, progress=False, name="pretraining")
    epoch = runner.epoch(0)
    epoch.log(torch.tensor(math.nan), 4)
    with pytest.raises(TrainingError, match=r"pretraining diverged in epoch 1 \(training loss nan\); try a lower"):
        epoch.summary()


def test_an_epoch_reduces_its_logged_means_and_counts_its_items(fabric):
    runner = EpochRunner(fabric, epochs=1, seed=0, progress=False, batch_size=4)
    epoch = runner.epoch(0)
    for idx in epoch.track(epoch.batches(10)):
        epoch.log(torch.tensor(2.0), len(idx), other=1.0)
    row = epoch.summary()
    assert (
        row["epoch"] == 1 and row["loss"] == 2.0 and row["other"] == 1.0 and row["samples"] == 8
    )  # short batch dropped
    runner.end(row, {}, {})
    assert runner.history == [row]


def test_a_device_set_up_fabric_refuses_is_a_training_error():
    with pytest.raises(HeadstartError, match="Lightning Fabric cannot run with"):
        make_fabric(DistributedConfig(accelerator="cpu", distributed_strategy="fsdp"))
