"""An ONNX export folder (`export.json`) is served through `headstart.runtime`, with the same API as a bundle."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from tests.conftest import digit_images, make_texts
from tests.serve.conftest import client_for


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def image_export(image_model_dir, tmp_path_factory):
    from headstart.export import export_onnx

    out = tmp_path_factory.mktemp("serve-export") / "digits-onnx"
    export_onnx(image_model_dir, out)
    return out


def test_an_export_is_served_with_its_runtime(image_export):
    from headstart.runtime import load_export

    images = [np.stack([im] * 3, axis=-1) for im in digit_images(1, seed=2)[0][:3]]
    want = load_export(image_export).predict_proba(images)
    with client_for(image_export, name="digits") as client:
        meta = client.get("/v2/models/digits").json()
        assert meta["platform"] == "onnxruntime" and meta["outputs"][1]["shape"] == [-1, 10]
        data = [base64.b64encode(png(im)).decode() for im in images]
        body = {"inputs": [{"name": "image", "shape": [3], "datatype": "BYTES", "data": data}]}
        out = {o["name"]: o for o in client.post("/v2/models/digits/infer", json=body).json()["outputs"]}
        np.testing.assert_allclose(np.reshape(out["label_probabilities"]["data"], (3, 10)), want, atol=1e-5)
        card = client.get("/card").json()
        assert card["modality"] == "image" and card["tasks"]["label"]["classes"] == [str(d) for d in range(10)]


def test_an_exported_text_model_never_reads_server_files(text_model_dir, tmp_path_factory, tmp_path):
    from headstart.export import export_onnx

    out = tmp_path_factory.mktemp("serve-export") / "news-onnx"
    export_onnx(text_model_dir, out)
    secret = tmp_path / "secret.txt"
    secret.write_text("private")
    with client_for(out, name="news") as client:
        r = client.post("/predict", json={"texts": [str(secret)]})
        assert r.status_code == 422 and "names a .txt file" in r.json()["error"]
        assert client.post("/predict", json={"texts": make_texts(2)[0]}).status_code == 200
