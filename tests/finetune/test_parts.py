"""The pieces: config routing, layer groups and learning rates per strategy, frozen BatchNorm, heads, lr-find."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from headstart.errors import HeadstartError
from headstart.finetune.config import FinetuneConfig
from headstart.finetune.strategies import Stage, layer_groups, one_cycle, param_groups, plan_stages
from tests.finetune.ft_helpers import FAST, TINY_CNN


def test_options_go_to_their_concern_and_unknown_ones_fail():
    config = FinetuneConfig.from_options(epochs=2, l2sp=0.1, devices=2, augment="strong", strategy="gradual")
    assert config.loop.epochs == 2 and config.regularisation.l2sp == 0.1 and config.distributed.devices == 2
    assert config.total_epochs == 3  # gradual adds the frozen epoch
    assert FinetuneConfig.from_json(config.to_json()) == config
    with pytest.raises(HeadstartError, match="unknown fine-tuning option"):
        FinetuneConfig.from_options(epoch=2)
    with pytest.raises(HeadstartError, match="augment"):
        FinetuneConfig.from_options(augment="heavy")


def test_the_schedule_is_sized_to_the_data_unless_given():
    sized = FinetuneConfig.from_options(batch_size=32).sized_to
    # 20 photos a class of 10: 6 full batches an epoch, no validation part (30 items could not tell epochs apart)
    few = sized(200)
    assert few.loop.val_size == 0.0 and few.loop.epochs == 50 and few.total_epochs == 50  # 300 steps for images
    assert few.strategy.backbone_lr_mult == 0.3 and not few.unsized
    many = sized(10_000)  # 8,500 to train on: 266 steps an epoch already, and 1,500 to validate on
    assert many.loop.val_size == 0.15 and many.loop.epochs == 5
    assert sized(8).loop.epochs == 100  # one step an epoch: capped
    assert sized(400, world_size=2).loop.epochs == 50  # each process steps through half the items: 6 batches
    # text and audio keep the first sized schedule: 100 steps within 5-50 epochs, the backbone at 0.1 x
    for modality in ("text", "audio"):
        short = sized(200, modality=modality)
        assert (short.loop.epochs, short.strategy.backbone_lr_mult) == (17, 0.1)
        assert sized(8, modality=modality).loop.epochs == 50
    given = FinetuneConfig.from_options(epochs=3, val_size=0.2, backbone_lr_mult=0.05).sized_to(80)
    assert (given.loop.epochs, given.loop.val_size, given.strategy.backbone_lr_mult) == (3, 0.2, 0.05)
    stopping = FinetuneConfig.from_options(patience=2).sized_to(80)  # early stopping needs a validation part
    assert stopping.loop.val_size == 0.15 and stopping.loop.epochs == 100  # 68 items left: 2 full batches
    with pytest.raises(HeadstartError, match="backbone_lr_mult must be positive"):
        FinetuneConfig.from_options(backbone_lr_mult=0)
    with pytest.raises(HeadstartError, match="not sized"):
        _ = FinetuneConfig.from_options().total_epochs


def test_an_unsized_run_trains_for_the_sized_schedule_and_says_so(digits60):
    from headstart.finetuning import finetune

    model = finetune(digits60, backbone=TINY_CNN, augment="none", refit=False, **FAST)
    report = model.report["finetune"]
    # 45 training images in batches of 16 (the short last one dropped): 2 steps an epoch; 300 steps would be 150
    # epochs, capped at 100
    assert report["epochs_run"] == 100 and report["config"]["loop"]["epochs"] == 100
    assert report["config"]["strategy"]["backbone_lr_mult"] == 0.3
    assert report["config"]["loop"]["val_size"] == 0.0 and "val_accuracy" not in report["history"][-1]
    assert report["schedule"].startswith("100 epochs (sized to 45 items: at least 300 optimizer steps); no validation")


def test_layer_groups_follow_the_blocks():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", pretrained=False)
    names = {n for n, _ in model.named_parameters() if not n.startswith("classifier")}
    groups = layer_groups(model, names)
    assert groups[0][0] == "conv_stem.weight" and groups[-1][-1] == "bn2.bias"
    assert len(groups) == 9  # stem, 7 block stages, top
    bert = torch.nn.Module()
    bert.embeddings = torch.nn.Linear(2, 2)
    bert.encoder = torch.nn.Module()
    bert.encoder.layer = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(3)])
    bert.pooler = torch.nn.Linear(2, 2)
    groups = layer_groups(bert, {n for n, _ in bert.named_parameters()})
    assert [g[0].split(".")[0] for g in groups] == ["embeddings", "encoder", "encoder", "encoder", "pooler"]


def _net_and_groups(strategy: str, stage_index: int = -1):
    from headstart.backbones import create_backbone
    from headstart.finetune.net import build_net

    config = FinetuneConfig.from_options(strategy=strategy, lr=1.0, backbone_lr_mult=0.1, layer_decay=0.5)
    bb = create_backbone(TINY_CNN)
    net = build_net(bb, [3], torch.zeros(64).numpy(), torch.ones(64).numpy(), config)
    trainable = {n for n, _ in net.encoder.named_parameters()}
    stage = plan_stages(config)[stage_index]
    return param_groups(net, net.encoder, trainable, stage, config)


def test_learning_rates_per_strategy():
    def rates(groups):
        return sorted({round(g["top_lr"], 6) for g in groups})

    assert rates(_net_and_groups("finetune")) == [0.1, 1.0]
    # tiny-cnn has 6 numbered layers in `features`: decay 0.5 per group below the top
    assert rates(_net_and_groups("layer-decay")) == sorted({1.0, *(round(0.1 * 0.5**k, 6) for k in range(6))})
    gradual = rates(_net_and_groups("gradual"))
    assert gradual[-1] == 0.5 and gradual[0] == pytest.approx(0.005)  # (lr/2)/lr_mult .. lr/2
    assert rates(_net_and_groups("gradual", 0)) == [1.0]  # frozen stage: the head only
    no_decay = [g for g in _net_and_groups("finetune") if g["params"][0].ndim <= 1]
    assert all(g["weight_decay"] == 0.0 for g in no_decay)


def test_one_cycle_warms_up_then_anneals():
    stage = Stage("s", 0, 1, True, warmup=0.25, div=25.0)
    factors = [one_cycle(i, 100, stage) for i in range(101)]
    assert factors[0] == pytest.approx(1 / 25) and max(factors) == pytest.approx(1.0)
    assert factors.index(max(factors)) == 25 and factors[-1] < 1e-4


def test_frozen_batchnorm_keeps_its_statistics(digits60):
    from headstart.finetuning import finetune

    model = finetune(digits60, backbone=TINY_CNN, strategy="gradual", epochs=1, freeze_epochs=1, augment="none",
                     precise_bn=0, refit=False, **FAST)  # fmt: skip
    assert model.report["finetune"]["history"][0]["stage"] == "frozen"
    # the frozen epoch must not move the backbone's BatchNorm statistics: only the unfrozen epoch's steps count
    bn = [m for m in model.backbone.module.modules() if isinstance(m, torch.nn.BatchNorm2d)][0]
    steps_unfrozen = 2  # 45 training items, batch 16, last short batch dropped
    assert int(bn.num_batches_tracked) == steps_unfrozen


def test_vgg16_with_mlp_head_trains_a_step():
    from headstart.backbones import create_backbone
    from headstart.finetune.net import FinetuneNet, build_net

    bb = create_backbone("timm:vgg16?init=random&size=32")
    config = FinetuneConfig.from_options(head="mlp")
    net = build_net(bb, [10], torch.zeros(bb.embed_dim).numpy(), torch.ones(bb.embed_dim).numpy(), config)
    assert isinstance(net, FinetuneNet)
    core = net.heads[0][1]
    assert [type(m).__name__ for m in core] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert core[0].out_features == 1024 and core[2].p == 0.5
    x = torch.randn(2, 3, 32, 32)
    net.set_train_mode()
    loss = torch.nn.functional.cross_entropy(net(x)[0], torch.tensor([1, 2]))
    loss.backward()
    assert net.encoder.features[0].weight.grad is not None and core[0].weight.grad is not None


def test_lr_find_suggests_a_rate(digits60, tmp_path):
    from headstart.finetuning import lr_find

    result = lr_find(digits60, backbone=TINY_CNN, num_it=12, batch_size=16, end_lr=1.0, out=tmp_path / "lr.png",
                     progress=False, num_workers=0)  # fmt: skip
    assert (tmp_path / "lr.png").is_file()
    assert result["suggestion"] is not None and result["lrs"][0] <= result["suggestion"] <= result["lrs"][-1]


def test_batchnorm_statistics_freeze_for_pretrained_weights_only():
    from headstart.backbones import create_backbone
    from headstart.finetune.net import build_net

    config = FinetuneConfig.from_options()
    bb = create_backbone(TINY_CNN)
    zeros, ones = torch.zeros(64).numpy(), torch.ones(64).numpy()
    assert not build_net(bb, [3], zeros, ones, config).freeze_bn  # random init: its statistics must be learnt
    bb.weights_id = "pretrained-file"
    net = build_net(bb, [3], zeros, ones, config)
    net.set_train_mode()
    assert net.freeze_bn and not any(m.training for m in net.encoder.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert net.heads[0][0].training  # the head's own normalisation still learns its statistics


def test_validation_holds_out_whole_groups_when_items_have_groups():
    from headstart.data import Dataset
    from headstart.finetune.data import carve_validation

    n = 120
    ds = Dataset(
        modality="text",
        items=[f"item {i}" for i in range(n)],
        targets={"label": [str(i % 3) for i in range(n)]},
        where=[f"#{i}" for i in range(n)],
        source="grouped",
        groups=[f"voice{i % 12}" for i in range(n)],
    )
    train, val = carve_validation(ds, 0.2, seed=0)
    assert val is not None and len(train) + len(val) == n
    assert not set(train.groups) & set(val.groups)  # no voice on both sides
    assert set(val.labels) == {"0", "1", "2"}


def test_in_memory_items_load_as_the_api_loads_them():
    """Lists and arrays go to `from_arrays` (through `headstart.runs`), not to a path loader: unlabelled items
    are one clear error about labels."""
    from headstart.errors import DataError
    from headstart.finetuning import finetune, lr_find

    items = [np.zeros((8, 8), dtype=np.uint8)] * 20
    for run in (finetune, lr_find):
        with pytest.raises(DataError, match="no labels"):
            run(items, progress=False)
