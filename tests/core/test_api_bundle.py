"""The three steps end to end through the Python API, and the saved-model format."""

from __future__ import annotations

import json

import numpy as np
import pytest

import headstart as hs
from headstart.data import from_arrays
from headstart.errors import BundleError, DataError
from tests.conftest import make_texts


@pytest.fixture(scope="module")
def digits_model(digits_small, tmp_path_factory):
    images, labels = digits_small
    out = tmp_path_factory.mktemp("run") / "digits"
    model = hs.fit(
        from_arrays(images, labels), backbone="headstart:tiny-cnn", out=out, progress=False, strategy="probe"
    )
    return model, out


def test_fit_reports_metrics_beside_a_baseline(digits_model) -> None:
    model, out = digits_model
    report = model.report
    task = report["tasks"]["label"]
    assert task["accuracy"] >= 0.5 and task["n"] == report["n_test"] == 30  # chance is 0.1 (measured: 0.83)
    assert task["baseline"]["name"] == "raw pixels + logistic regression"
    assert set(task["per_class"]) == {str(d) for d in range(10)}
    assert report["seed"] == 0 and report["n_train"] == 120 and model.data_info["n_scored_train"] == 90
    for name in ("headstart.json", "heads.safetensors", "report.json", "report.md", "confusion.png"):
        assert (out / name).is_file(), name
    assert (out / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bundle_is_json_plus_safetensors_and_round_trips(digits_model, digits_small) -> None:
    model, out = digits_model
    manifest = json.loads((out / "headstart.json").read_text())
    assert manifest["backbone"]["spec"] == "headstart:tiny-cnn"
    assert manifest["backbone"]["preprocessing"]["kind"] == "image"
    assert manifest["tasks"]["label"]["classes"] == [str(d) for d in range(10)]
    assert manifest["data"]["fingerprint"] and manifest["versions"]["torch"]
    assert "accuracy" in manifest["metrics"]["label"]
    assert not any(p.suffix in (".pt", ".pth", ".pkl", ".bin") for p in out.iterdir())
    loaded = hs.load(out)
    images, _ = digits_small
    np.testing.assert_allclose(loaded.predict_proba(images[:10]), model.predict_proba(images[:10]), atol=1e-5)
    assert loaded.predict(images[:3]) == model.predict(images[:3])


def test_predict_gives_label_and_probability(digits_model, digits_small) -> None:
    _, out = digits_model
    rows = hs.predict_rows(out, list(digits_small[0][:2]), top_k=3)
    assert rows[0]["input"] == "item #0" and rows[0]["label"] in [str(d) for d in range(10)]
    assert 0 < rows[0]["label_probability"] <= 1 and len(rows[0]["label_top"]) == 3
    assert rows[0]["label_top"][0] == {"label": rows[0]["label"], "probability": rows[0]["label_probability"]}
    labels = hs.predict(out, list(digits_small[0][:2]))  # the same shape as model.predict: one label per input
    assert labels == hs.load(out).predict(list(digits_small[0][:2])) == [r["label"] for r in rows]


def test_evaluate_on_labelled_data(digits_model, digits_small, tmp_path) -> None:
    _, out = digits_model
    report = hs.evaluate(out, from_arrays(*digits_small), out=tmp_path / "eval", progress=False)
    assert report["tasks"]["label"]["n"] == 120
    assert (tmp_path / "eval" / "report.md").read_text().startswith("# evaluate")


def test_labels_per_class_and_seed(digits_small) -> None:
    data = from_arrays(*digits_small)
    a = hs.fit(data, backbone="headstart:tiny-cnn", labels_per_class=2, seed=3, baseline=False, progress=False)
    b = hs.fit(data, backbone="headstart:tiny-cnn", labels_per_class=2, seed=3, baseline=False, progress=False)
    assert a.report["n_train"] == 20
    assert a.report["tasks"]["label"]["accuracy"] == b.report["tasks"]["label"]["accuracy"]


def test_multitask_text_fit_with_mlp_head(tiny_st_dir, tmp_path) -> None:
    texts, topics = make_texts(80)
    lengths = ["long" if len(t) > 50 else "short" for t in texts]
    table = tmp_path / "news.csv"
    import pandas as pd

    pd.DataFrame({"text": texts, "topic": topics, "size": lengths}).to_csv(table, index=False)
    model = hs.fit(
        str(table),
        backbone=f"st:{tiny_st_dir}",
        head="mlp",
        head_params={"hidden": 32, "max_epochs": 20},
        label_columns=["topic", "size"],
        out=tmp_path / "multi",
        progress=False,
    )
    assert model.tasks == ["topic", "size"]
    assert set(model.report["tasks"]) == {"topic", "size"}
    assert model.report["tasks"]["topic"]["baseline"]["name"] == "TF-IDF + logistic regression"
    assert (tmp_path / "multi" / "confusion-topic.png").is_file()
    loaded = hs.load(tmp_path / "multi")
    assert loaded.predict(["the market shares fell"], task="size")[0] in ("long", "short")
    # fit's default (auto) on the same two columns: candidates scored on the mean accuracy over both, one model saved
    auto = hs.fit(str(table), backbone=f"st:{tiny_st_dir}", label_columns=["topic", "size"], out=tmp_path / "auto",
                  progress=False)  # fmt: skip
    assert auto.report["strategy"] == "auto" and auto.tasks == ["topic", "size"]
    assert set(auto.report["tasks"]) == {"topic", "size"} and len(auto.report["leaderboard"]) >= 3
    again = hs.load(tmp_path / "auto")
    texts = ["the market shares fell", "the team won the match"]
    assert again.predict(texts, task="size") == auto.predict(texts, task="size")


def test_embed_writes_npy(tiny_st_dir, tmp_path) -> None:
    texts, _ = make_texts(10)
    x = hs.embed(from_arrays(texts), backbone=f"st:{tiny_st_dir}", out=tmp_path / "f.npy", progress=False)
    assert x.shape == (10, 32) and np.load(tmp_path / "f.npy").shape == (10, 32)


def test_modality_mismatch_is_a_clear_error(tiny_st_dir, digits_small) -> None:
    with pytest.raises(DataError, match="holds image data but backbone st:.* encodes text"):
        hs.fit(from_arrays(*digits_small), backbone=f"st:{tiny_st_dir}", progress=False)


def test_failed_save_keeps_the_previous_bundle(digits_model, tmp_path, monkeypatch) -> None:
    model, _ = digits_model
    target = tmp_path / "model"
    model.save(target)
    before = (target / "heads.safetensors").read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", boom)
    with pytest.raises(OSError, match="disk full"):
        model.save(target)
    assert (target / "heads.safetensors").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp folder left behind


def test_broken_bundles_give_clear_errors(tmp_path, digits_model) -> None:
    with pytest.raises(BundleError, match="no such model folder"):
        hs.load(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BundleError, match="no headstart.json"):
        hs.load(tmp_path / "empty")
    _, out = digits_model
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "headstart.json").write_text((out / "headstart.json").read_text())
    (broken / "heads.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BundleError, match="heads.safetensors: its SHA-256 is not the one in headstart.json"):
        hs.load(broken)
    manifest = json.loads((out / "headstart.json").read_text())
    old = {k: v for k, v in manifest.items() if k != "files"} | {"format_version": 1}  # before weights had hashes
    (broken / "headstart.json").write_text(json.dumps(old))
    with pytest.raises(BundleError, match="heads.safetensors: unreadable"):
        hs.load(broken)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda m: m.pop("tasks"), "the top level: 'tasks' is a required property"),
        (lambda m: m["tasks"]["label"].update(classes=[]), "tasks/label/classes: .* should be non-empty"),
        (lambda m: m["backbone"].update(weights="../../secret.safetensors"), "backbone/weights: '../../secret"),
        (lambda m: m["files"].update({"heads.safetensors": "md5:0"}), "files/heads.safetensors: 'md5:0' does not"),
    ],
)
def test_a_manifest_from_anyone_is_checked_field_by_field(tmp_path, digits_model, change, message) -> None:
    import shutil

    _, out = digits_model
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    manifest = json.loads((copy / "headstart.json").read_text())
    change(manifest)
    (copy / "headstart.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match=message):
        hs.load(copy)


def test_no_backbone_path_leads_out_of_the_model_folder(tmp_path, digits_model, digits_small) -> None:
    """`local:../..` is refused; a model fitted on a `local:` backbone carries a copy, so it loads and predicts
    with the original folder gone; an outside folder is followed only when trusted."""
    import shutil

    _, out = digits_model
    evil = tmp_path / "evil"
    shutil.copytree(out, evil)
    manifest = json.loads((evil / "headstart.json").read_text())
    manifest["backbone"]["spec"] = "local:./../../../../etc"
    (evil / "headstart.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="leads out of the model folder"):
        hs.load(evil)

    source = tmp_path / "pretrained"
    shutil.copytree(out, source)
    images, labels = digits_small
    model = hs.fit(
        from_arrays(images, labels), backbone=f"local:{source}", out=tmp_path / "m", strategy="probe", progress=False
    )
    expected = model.predict(list(images[:5]))
    shutil.rmtree(source)
    saved = json.loads((tmp_path / "m" / "headstart.json").read_text())
    assert saved["backbone"]["spec"] == "local:./backbone"
    assert (tmp_path / "m" / "backbone" / "headstart.json").is_file()
    assert hs.load(tmp_path / "m").predict(list(images[:5])) == expected

    manifest["backbone"]["spec"] = f"local:{out}"  # an absolute folder elsewhere, as old bundles had
    (evil / "headstart.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="outside the model folder; refused"):
        hs.load(evil)
    assert hs.load(evil, trust_local_paths=True).predict(list(images[:2])) == hs.load(out).predict(list(images[:2]))

    manifest["backbone"]["spec"] = f"concat:headstart:tiny-cnn + local:{out}"  # a part of a concat alike
    (evil / "headstart.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="outside the model folder; refused"):
        hs.load(evil)


def test_local_backbone_from_a_bundle(digits_model, digits_small) -> None:
    _, out = digits_model
    x = hs.embed(from_arrays(digits_small[0][:4]), backbone=f"local:{out}", progress=False)
    y = hs.embed(from_arrays(digits_small[0][:4]), backbone="headstart:tiny-cnn", progress=False)
    np.testing.assert_allclose(x, y, atol=1e-6)


def test_import_headstart_is_light() -> None:
    import subprocess
    import sys

    code = (
        "import sys, headstart; print(sorted(m for m in ('torch','timm','transformers','fastapi') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_embed_names_the_item_of_every_row_so_features_join_back(tmp_path, tiny_st_dir) -> None:
    """A table of 6 rows with one empty text: 5 feature rows, and the ids file says which table row each is."""
    table = tmp_path / "notes.csv"
    texts = ["the cat sat", "a dog ran", "", "birds sing at dawn", "rain again", "the sun came out"]
    table.write_text("text\n" + "\n".join(f'"{t}"' for t in texts) + "\n")
    out = tmp_path / "feats.npy"
    x = hs.embed(str(table), backbone=f"st:{tiny_st_dir}", out=out, progress=False)
    assert x.shape[0] == 5
    ids = (tmp_path / "feats.ids.csv").read_text().splitlines()
    assert ids[0] == "row,id" and len(ids) == 6
    assert ids[1:] == [f"{i},notes.csv row {r}" for i, r in enumerate([1, 2, 4, 5, 6])]  # the empty row 3 has none
    again = hs.embed(["birds sing at dawn"], backbone=f"st:{tiny_st_dir}", progress=False)
    np.testing.assert_allclose(np.asarray(x)[2], again[0], rtol=1e-5, atol=1e-6)  # row 2 is table row 4


def test_a_long_plot_title_is_wrapped_to_its_figure():
    from headstart.evaluation.plots import _wrapped

    title = "fine-tune (finetune): samples:solar-cells with headstart:efficientnet-lite0?size=128\nlabel: acc 0.489"
    lines = _wrapped(title, chars=44).splitlines()
    assert all(len(line) <= 44 for line in lines) and len(lines) == 3
    assert lines[-1] == "label: acc 0.489" and " ".join(lines[:2]) == title.splitlines()[0]
