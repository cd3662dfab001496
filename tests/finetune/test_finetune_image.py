"""Fine-tuning an image backbone end to end: training, outputs beside the run, a bundle that loads and agrees."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import torch

import headstart as hs
from headstart.finetuning import finetune
from tests.finetune.ft_helpers import FAST, TINY_CNN


@pytest.fixture(scope="module")
def run(digits60, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft") / "run"
    model = finetune(
        digits60,
        backbone=TINY_CNN,
        epochs=3,
        lr=3e-2,
        out=out,
        augment="light",
        val_size=0.25,
        label_smoothing=0.1,
        l2sp=0.01,
        class_weight="balanced",
        dropout=0.1,
        **FAST,
    )
    return model, out


def test_training_lowers_the_loss(run):
    model, _ = run
    history = model.report["finetune"]["history"]
    assert len(history) == 3
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert {"val_loss", "val_accuracy", "seconds", "lr"} <= set(history[0])


def test_run_folder_holds_the_outputs(run):
    model, out = run
    for name in (
        "headstart.json",
        "heads.safetensors",
        "backbone.safetensors",
        "report.json",
        "metrics.csv",
        "learning-curve.png",
        "finetune-config.json",
        "checkpoint/checkpoint.json",
    ):
        assert (out / name).is_file(), name
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3]
    config = json.loads((out / "finetune-config.json").read_text())
    assert config["regularisation"]["l2sp"] == 0.01 and config["augment"]["augment"] == "light"
    manifest = json.loads((out / "headstart.json").read_text())
    assert manifest["backbone"]["spec"] == TINY_CNN and manifest["backbone"]["weights"] == "backbone.safetensors"


def test_tensorboard_gets_each_epoch_when_installed(run):
    pytest.importorskip("tensorboard", reason="TensorBoard logging needs the tensorboard package (test extra)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    model, out = run
    assert model.report["finetune"]["tensorboard"] == "tensorboard"
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    assert {"train_loss", "val_loss", "val_accuracy", "lr", "seconds"} <= set(events.Tags()["scalars"])
    losses = events.Scalars("train_loss")
    history = model.report["finetune"]["history"]
    assert [e.step for e in losses] == [1, 2, 3]
    assert [e.value for e in losses] == pytest.approx([r["train_loss"] for r in history], rel=1e-6)


def test_bundle_reloads_the_tuned_backbone(run, digits60):
    model, out = run
    loaded = hs.load(out)
    assert loaded.backbone_spec.startswith("local:") and loaded.tuned_backbone
    tuned = model.backbone.module.state_dict()
    for name, tensor in loaded.backbone.module.state_dict().items():
        assert torch.equal(tensor, tuned[name]), name
    items = digits60.items[:12]
    np.testing.assert_allclose(loaded.predict_proba(items), model.predict_proba(items), atol=1e-5)
    assert model.backbone.weights_id.startswith("finetuned-")


def test_bundle_saves_again_elsewhere(run, tmp_path):
    _, out = run
    loaded = hs.load(out)
    again = loaded.save(tmp_path / "copy")
    manifest = json.loads((again / "headstart.json").read_text())
    assert manifest["backbone"]["spec"] == TINY_CNN
    assert hs.load(again).predict(np.zeros((8, 8), np.uint8)) == loaded.predict(np.zeros((8, 8), np.uint8))


def test_fit_delegates_to_finetune(digits60):
    model = hs.fit(digits60, backbone=TINY_CNN, strategy="gradual", epochs=1, freeze_epochs=1, augment="none", **FAST)
    stages = [r["stage"] for r in model.report["finetune"]["history"]]
    assert stages == ["frozen", "unfrozen"]
    with pytest.raises(TypeError, match="options epochs do not apply to strategy .probe."):
        hs.fit(digits60, backbone=TINY_CNN, epochs=2, strategy="probe")
    with pytest.raises(TypeError, match="options epochs only reach strategy 'auto' through its fine-tuning"):
        hs.fit(digits60, backbone=TINY_CNN, epochs=2)  # auto, the default, with no time budget


def test_early_stopping_restores_the_best_epoch(digits60):
    model = finetune(digits60, backbone=TINY_CNN, epochs=6, lr=0.3, patience=1, augment="none", val_size=0.25, **FAST)
    report = model.report["finetune"]
    history = report["history"]
    best = max(history, key=lambda r: (r["val_accuracy"], -r["val_loss"]))
    assert report["best_epoch"] == best["epoch"]
    assert len(history) <= 6
    if len(history) < 6:  # stopped early: exactly `patience` epochs after the best
        assert len(history) == best["epoch"] + 1


def test_strong_augmentation_with_mixup_and_cutmix_trains(digits60):
    model = finetune(digits60, backbone=TINY_CNN, epochs=1, augment="strong", mixup=0.4, cutmix=1.0, **FAST)
    assert np.isfinite(model.report["finetune"]["history"][0]["train_loss"])


def test_tuned_weights_reload_with_the_preprocessing_they_were_trained_under(run, tmp_path):
    """The architecture's random-init build may preprocess differently (headstart:efficientnet-lite0 does):
    a bundle's tuned backbone takes the manifest's preprocessing."""
    import shutil

    _, out = run
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "headstart.json").read_text())
    manifest["backbone"]["preprocessing"].update(size=40, mean=[0.1, 0.2, 0.3])
    (copy / "headstart.json").write_text(json.dumps(manifest))
    backbone = hs.load(copy).backbone
    assert backbone.image_preprocessing.size == 40 and backbone.image_preprocessing.mean == (0.1, 0.2, 0.3)
    assert backbone.prepare(np.zeros((8, 8), np.uint8)).shape == (3, 40, 40)


def test_bf16_mixed_precision_trains_and_saves_float32_weights(tmp_path):
    from safetensors.torch import load_file

    from headstart.data import from_arrays
    from tests.conftest import digit_images

    images, labels = digit_images(6)
    model = finetune(from_arrays(images, labels), backbone=TINY_CNN, epochs=2, lr=3e-2, precision="bf16-mixed",
                     out=tmp_path / "bf16", **FAST)  # fmt: skip
    assert model.report["finetune"]["config"]["distributed"]["precision"] == "bf16-mixed"
    history = model.report["finetune"]["history"]
    assert all(np.isfinite(r["train_loss"]) for r in history)
    weights = load_file(str(tmp_path / "bf16" / "backbone.safetensors"))
    assert {v.dtype for v in weights.values() if v.is_floating_point()} == {torch.float32}  # Fabric keeps fp32 masters
    loaded = hs.load(tmp_path / "bf16")
    np.testing.assert_allclose(loaded.predict_proba(images[:4]), model.predict_proba(images[:4]), atol=1e-5)
