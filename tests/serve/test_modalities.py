"""Images and audio: encoded files (base64 BYTES, multipart uploads) and numeric tensors give what the model gives."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest

from tests.conftest import digit_images, tone, write_wav
from tests.serve.conftest import FakePredictor, client_for


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def digits():
    images, labels = digit_images(1, seed=3)
    return [np.stack([im] * 3, axis=-1) for im in images[:4]]  # RGB, as decoded files become


@pytest.fixture(scope="module")
def image_client(image_model_dir):
    with client_for(image_model_dir, name="digits") as c:
        yield c


def test_image_metadata(image_client):
    meta = image_client.get("/v2/models/digits").json()
    assert [(i["name"], i["datatype"]) for i in meta["inputs"]] == [
        ("image", "BYTES"),
        ("image", "UINT8"),
        ("image", "FP32"),
    ]
    assert meta["outputs"][1] == {"name": "label_probabilities", "datatype": "FP32", "shape": [-1, 10]}


def test_every_image_form_gives_the_models_probabilities(image_client, image_model_dir, digits):
    from headstart.model import load_model

    want = load_model(image_model_dir).predict_proba(digits)
    n, (h, w, _) = len(digits), digits[0].shape
    forms = {
        "BYTES": {"datatype": "BYTES", "shape": [n], "data": [base64.b64encode(png(d)).decode() for d in digits]},
        "UINT8": {"datatype": "UINT8", "shape": [n, h, w, 3], "data": np.stack(digits).ravel().tolist()},
        "FP32": {"datatype": "FP32", "shape": [n, h, w, 3], "data": (np.stack(digits) / 255).ravel().tolist()},
    }
    for form, tensor in forms.items():
        r = image_client.post("/v2/models/digits/infer", json={"inputs": [{"name": "image", **tensor}]})
        assert r.status_code == 200, (form, r.text)
        proba = {o["name"]: o for o in r.json()["outputs"]}["label_probabilities"]
        np.testing.assert_allclose(np.reshape(proba["data"], proba["shape"]), want, atol=1e-4, err_msg=form)
    files = [("files", (f"d{i}.png", png(d), "image/png")) for i, d in enumerate(digits)]
    rows = image_client.post("/predict", files=files, data={"top_k": "3"}).json()["predictions"]
    assert [r["input"] for r in rows] == [f"d{i}.png" for i in range(n)]
    for row, p in zip(rows, want):
        assert row["label_probability"] == pytest.approx(p.max(), abs=1e-4) and len(row["label_top"]) == 3


def test_a_grey_png_is_read_as_rgb_like_an_image_file(image_client, image_model_dir, tmp_path):
    from headstart.model import load_model

    grey = digit_images(1)[0][5]
    (tmp_path / "5.png").write_bytes(png(grey))
    want = load_model(image_model_dir).predict_proba([tmp_path / "5.png"])
    row = image_client.post("/predict", files=[("files", ("5.png", png(grey), "image/png"))]).json()
    assert row["predictions"][0]["label_probability"] == pytest.approx(want.max(), abs=1e-4)


@pytest.fixture(scope="module")
def audio():
    fake = FakePredictor("audio")
    with client_for(fake, name="tones") as c:
        yield c, fake


def test_audio_files_and_waveforms(audio, tmp_path):
    client, fake = audio
    wav = write_wav(tmp_path / "a.wav", tone(440, seconds=0.3)).read_bytes()
    flac = write_wav(tmp_path / "b.flac", 0.25 * tone(300, seconds=0.3)).read_bytes()
    r = client.post(
        "/predict", files=[("files", ("a.wav", wav, "audio/wav")), ("files", ("b.flac", flac, "audio/flac"))]
    )
    assert r.status_code == 200, r.text
    paths = fake.batches[-1]
    assert [p.suffix for p in paths] == [".wav", ".flac"] and not any(p.exists() for p in paths)  # cleaned up
    peaks = [row["label_top"][0]["probability"] for row in r.json()["predictions"]]
    assert peaks[0] == pytest.approx(max(np.abs(tone(440, seconds=0.3)).max(), 0.5), abs=0.01)
    body = {
        "inputs": [
            {"name": "audio", "datatype": "BYTES", "shape": [1], "data": [base64.b64encode(wav).decode()]},
        ]
    }
    assert client.post("/v2/models/tones/infer", json=body).status_code == 200
    wave = [0.0, 0.1, -0.7, 0.2]
    body = {"inputs": [{"name": "audio", "datatype": "FP32", "shape": [1, 4], "data": wave}]}
    r = client.post("/v2/models/tones/infer", json=body)
    assert r.status_code == 200 and r.json()["outputs"][1]["data"][1] == pytest.approx(0.7)


def test_bad_audio_is_4xx(audio):
    client, _ = audio
    for files in (
        [("files", ("x.wav", b"RIFF not really a wave", "audio/wav"))],
        [("files", ("x.png", png(np.zeros((4, 4), np.uint8)), "image/png"))],
    ):
        r = client.post("/predict", files=files)
        assert r.status_code == 422 and r.json()["error"]
    for tensor in (
        {"datatype": "FP32", "shape": [1, 2], "data": [float("nan"), 0.0]},
        {"datatype": "FP32", "shape": [1, 2, 2], "data": [0.0] * 4},
        {"datatype": "UINT8", "shape": [1, 2], "data": [0, 1]},
    ):
        body = json.dumps({"inputs": [{"name": "audio", **tensor}]})  # NaN as JSON's extension writes it
        r = client.post("/v2/models/tones/infer", content=body, headers={"Content-Type": "application/json"})
        assert 400 <= r.status_code < 500 and r.json()["error"], r.text
    assert client.post("/v2/models/tones/ready").status_code == 405
