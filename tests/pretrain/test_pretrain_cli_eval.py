"""The `headstart pretrain` command, the transfer evaluation (images and text), and the framework's checks."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from headstart.errors import HeadstartError
from headstart.pretrain import pretrain
from headstart.pretrain.common import Pretrained
from headstart.pretrain.evaluate import parse_budgets, transfer_evaluation
from tests.core.test_cli import run
from tests.pretrain.pt_helpers import FAST, assert_round_trip


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, digits_small) -> Path:
    from PIL import Image

    images, labels = digits_small
    root = tmp_path_factory.mktemp("digit-folder")
    for i, (image, label) in enumerate(zip(images, labels)):
        (root / label).mkdir(exist_ok=True)
        Image.fromarray(image).save(root / label / f"{i}.png")
    return root


def test_cli_pretrains_and_evaluates(digit_folder, tmp_path):
    out = tmp_path / "ae"
    code, text = run(
        "pretrain", digit_folder, "--method", "autoencoder", "--out", out, "--epochs", "2", "--batch-size", "32",
        "--eval", digit_folder, "--budgets", "2,all",
    )  # fmt: skip
    assert code == 0, text
    assert "transfer evaluation" in text and "raw pixels" in text and "PCA-32" in text
    assert f"local:{out.resolve()}" in text.replace("\n", "")
    result = json.loads((out / "eval.json").read_text())
    assert result["budgets"] == ["2/class", "all"] and result["n_test"] == 30
    assert {r["representation"].split(" (")[0] for r in result["rows"]} == {
        "pretrained",
        "raw pixels",
        "PCA-32 of pixels",
    }
    assert "| representation | 2/class | all |" in (out / "eval.md").read_text()
    manifest = json.loads((out / "headstart.json").read_text())
    assert manifest["pretrain"]["data"]["n_items"] == 90  # the 30 test items were left out of pretraining


def test_cli_json_then_embed_with_the_result(digit_folder, tmp_path):
    out = tmp_path / "gan"
    code, text = run("pretrain", digit_folder, "-m", "gan", "-o", out, "--epochs", "1", "--format", "json")
    assert code == 0, text
    payload = json.loads(text)
    assert payload["finished"] and payload["history"][0]["samples_per_s"] > 0
    code, text = run(
        "embed", digit_folder, "--backbone", payload["spec"], "--out", tmp_path / "x.npy", "--format", "json"
    )
    assert code == 0, text
    assert json.loads(text)["shape"] == [120, 384]


def test_cli_stop_then_resume(digit_folder, tmp_path):
    out = tmp_path / "c"
    args = ("pretrain", digit_folder, "-m", "contrastive", "-o", out, "--epochs", "2", "--batch-size", "32")
    code, text = run(*args, "--stop-after", "1")
    assert code == 0 and "continue with --resume" in text, text
    code, text = run(*args, "--resume")
    assert code == 0, text
    assert json.loads((out / "headstart.json").read_text())["pretrain"]["resumed_at"] == 1


def test_cli_errors_are_one_line(digit_folder, tmp_path):
    code, text = run("pretrain", digit_folder, "-m", "autoencoder", "-o", tmp_path / "x", "--set", "variant=sparse")
    assert code == 2 and "variant must be one of" in text
    code, text = run("pretrain", digit_folder, "-m", "jigsaw", "-o", tmp_path / "x")
    assert code == 2 and "'jigsaw' is not one of 'autoencoder', 'gan', 'contrastive'" in text
    code, text = run(
        "pretrain", digit_folder, "-m", "gan", "-o", tmp_path / "x", "--budgets", "two", "--eval", digit_folder
    )
    assert code == 2 and "budgets" in text


def test_unknown_method_and_empty_data(tmp_path, pool):
    with pytest.raises(HeadstartError, match="unknown pretraining method 'jigsaw'; known: autoencoder, gan"):
        pretrain(pool, method="jigsaw", out=tmp_path / "x")
    with pytest.raises(HeadstartError, match="1 images to pretrain on"):
        pretrain(pool.subset([0]), method="autoencoder", out=tmp_path / "x", **FAST)
    with pytest.raises(HeadstartError, match="at least one labels-per-class budget"):
        parse_budgets(" , ")


def test_eval_with_the_starting_backbone(pool, labelled, tmp_path):
    start = "headstart:tiny-cnn?size=16"
    result = pretrain(pool, method="contrastive", out=tmp_path / "c", backbone=start, eval_data=labelled,
                      eval_budgets=(3,), **FAST)  # fmt: skip
    names = [r["representation"] for r in result.evaluation["rows"]]
    assert names == ["pretrained (64-d)", "raw pixels (64-d)", "PCA-64 of pixels", f"start: {start} (64-d)"]
    accuracy = {r["representation"]: r["accuracy"] for r in result.evaluation["rows"]}
    assert accuracy["raw pixels (64-d)"] >= 0.6 and min(accuracy.values()) >= 0.3  # 30 digits; chance is 0.1


def test_text_evaluation_uses_tfidf_and_svd(tiny_st_dir):
    from headstart.data import from_arrays
    from tests.conftest import make_texts

    texts, labels = make_texts(40)
    ds = from_arrays(texts, labels, modality="text")
    result = transfer_evaluation(f"st:{tiny_st_dir}", ds, budgets=(2, None), progress=False)
    names = {r["representation"] for r in result["rows"]}
    assert names == {"pretrained (32-d)", "TF-IDF (raw inputs)", f"TruncatedSVD-{_svd_k(result)} of TF-IDF"}
    tfidf = [r["accuracy"] for r in result["rows"] if r["representation"] == "TF-IDF (raw inputs)"]
    assert tfidf[-1] == 1.0  # two topics with disjoint words


def _svd_k(result: dict) -> int:
    (name,) = {r["representation"] for r in result["rows"] if r["representation"].startswith("TruncatedSVD")}
    return int(name.split("-")[1].split()[0])


def test_a_text_method_goes_through_the_framework(tiny_st_dir, tmp_path, monkeypatch):
    """A stand-in text method: the framework loads text, loops, saves a text backbone and evaluates it."""
    from headstart.backbones import create_backbone
    from headstart.data import from_arrays
    from headstart.pretrain import registry
    from headstart.pretrain import run as run_module
    from tests.conftest import make_texts

    def train(job):
        backbone = create_backbone(f"st:{tiny_st_dir}")
        for epoch in job.loop({"encoder": backbone.module}, {}):
            for batch in epoch.track(epoch.batches(len(job.data))):
                epoch.log(1.0 / epoch.number, len(batch))
        return Pretrained(backbone, architecture=f"st:{tiny_st_dir}", history=job.history)

    stub = types.ModuleType("stub_text_method")
    stub.MODALITIES, stub.train = ("text",), train
    monkeypatch.setitem(sys.modules, "stub_text_method", stub)
    monkeypatch.setitem(registry.METHODS, "stub", "stub_text_method")
    monkeypatch.setattr(run_module, "METHODS", registry.METHODS)
    texts, labels = make_texts(40)
    ds = from_arrays(texts, labels, modality="text")
    result = pretrain(ds, method="stub", out=tmp_path / "t", eval_data=ds, eval_budgets=(2,), **{**FAST, "epochs": 2})
    assert [r["loss"] for r in result.history] == [1.0, 0.5]
    assert_round_trip(result, ds)
    assert result.evaluation["rows"][0]["representation"] == "pretrained (32-d)"
    with pytest.raises(HeadstartError, match="autoencoder pretraining works on image data"):
        pretrain(ds, method="autoencoder", out=tmp_path / "x", **FAST)
    assert np.isfinite([r["accuracy"] for r in result.evaluation["rows"]]).all()
