"""Whatever a caller sends, the answer is a 4xx with a JSON `error`, never a 500, and the server goes on serving."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest

from tests.serve.conftest import FakePredictor, client_for

OK = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a fine text"]}]}


def tensor(**fields):
    base = {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["a fine text"]}
    return {"inputs": [{**base, **fields}]}


@pytest.fixture(scope="module")
def client():
    with client_for(FakePredictor("text"), name="m", max_items=4, max_body_bytes=4096) as c:
        yield c


@pytest.fixture(scope="module")
def image_client():
    with client_for(FakePredictor("image"), name="img", max_items=4, max_body_bytes=200_000) as c:
        yield c


INFER_CASES = {
    "malformed JSON": (b'{"inputs": [', {"Content-Type": "application/json"}, 422),
    "JSON that is a list": (b"[1, 2]", {"Content-Type": "application/json"}, 422),
    "no inputs": ({"outputs": []}, None, 422),
    "an unknown field": ({**OK, "extra": 1}, None, 422),
    "an unknown tensor field": (tensor(colour="red"), None, 422),
    "empty text": (tensor(data=[" "]), None, 422),
    "a number as text": (tensor(data=[3]), None, 422),
    "two input tensors": ({"inputs": OK["inputs"] * 2}, None, 400),
    "a wrong input name": (tensor(name="image"), None, 400),
    "a wrong datatype": (tensor(datatype="FP32", data=[1.0]), None, 400),
    "shape and data disagree": (tensor(shape=[2]), None, 400),
    "a negative shape": (tensor(shape=[-1]), None, 400),
    "a text shape of rank 3": (tensor(shape=[1, 1, 1], data=[[["x"]]]), None, 400),
    "data that is not a list": (tensor(data="a fine text"), None, 422),
    "no items": (tensor(shape=[0], data=[]), None, 422),
    "too many items": (tensor(shape=[5], data=["x"] * 5), None, 413),
    "a body over the limit": (tensor(data=["x" * 5000]), None, 413),
}


@pytest.mark.parametrize("case", INFER_CASES, ids=list(INFER_CASES))
def test_bad_infer_requests_are_4xx_with_a_json_error(client, case):
    body, headers, status = INFER_CASES[case]
    if isinstance(body, bytes):
        r = client.post("/v2/models/m/infer", content=body, headers=headers)
    else:
        r = client.post("/v2/models/m/infer", json=body)
    assert r.status_code == status, r.text
    assert isinstance(r.json()["error"], str) and r.json()["error"]
    assert client.post("/v2/models/m/infer", json=OK).status_code == 200  # still serving


PREDICT_CASES = {
    "malformed JSON": (dict(content=b"{", headers={"Content-Type": "application/json"}), 400),
    "a JSON string": (dict(json="text"), 422),
    "a wrong field": (dict(json={"text": ["x"]}), 422),
    "texts not a list": (dict(json={"texts": "x"}), 422),
    "an empty text": (dict(json={"texts": ["ok", ""]}), 422),
    "a null text": (dict(json={"texts": [None]}), 422),
    "top_k zero": (dict(json={"texts": ["x"], "top_k": 0}), 422),
    "top_k a word": (dict(json={"texts": ["x"], "top_k": "two"}), 422),
    "too many texts": (dict(json={"texts": ["x"] * 5}), 413),
    "plain text body": (dict(content=b"hello", headers={"Content-Type": "text/plain"}), 415),
    "a huge Content-Length": (
        dict(content=b"{}", headers={"Content-Type": "application/json", "Content-Length": "999999"}),
        413,
    ),
    "no files in a form": (dict(data={"top_k": "1"}, files={"other": ("a.txt", b"x")}), 422),
}


@pytest.mark.parametrize("case", PREDICT_CASES, ids=list(PREDICT_CASES))
def test_bad_predict_requests_are_4xx_with_a_json_error(client, case):
    kwargs, status = PREDICT_CASES[case]
    try:
        r = client.post("/predict", **kwargs)
    except Exception as exc:  # h11 in TestClient may refuse a lying Content-Length itself; that is not the server
        pytest.skip(f"the test client refused the request: {exc}")
    assert r.status_code == status, r.text
    assert r.json()["error"]
    assert client.post("/predict", json={"texts": ["still here"]}).status_code == 200


def png(array: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG")
    return buf.getvalue()


def image_tensor(**fields):
    data = base64.b64encode(png(np.zeros((8, 8, 3), np.uint8))).decode()
    return {"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [data], **fields}]}


IMAGE_CASES = {
    "not an image": (image_tensor(data=[base64.b64encode(b"hello, not a PNG").decode()]), 422),
    "bad base64": (image_tensor(data=["%%% not base64 %%%"]), 422),
    "a truncated PNG": (image_tensor(data=[base64.b64encode(png(np.zeros((64, 64, 3), np.uint8))[:60]).decode()]), 422),
    "an empty file": (image_tensor(data=[""]), 422),
    "UINT8 out of range": (image_tensor(datatype="UINT8", shape=[1, 2, 2], data=[0, 1, 2, 300]), 422),
    "FP32 over 1": (image_tensor(datatype="FP32", shape=[1, 2, 2], data=[0, 0.5, 1, 2]), 422),
    "an image of rank 1": (image_tensor(datatype="UINT8", shape=[1, 4], data=[0, 1, 2, 3]), 400),
    "four channels in the shape": (image_tensor(datatype="UINT8", shape=[1, 1, 1, 2], data=[0, 1]), 400),
    "zero-sized image": (image_tensor(datatype="UINT8", shape=[1, 0, 3], data=[]), 422),
    "strings as pixels": (image_tensor(datatype="UINT8", shape=[1, 1, 2], data=["a", "b"]), 422),
    "a text model's datatype": (image_tensor(datatype="INT64", shape=[1, 1, 1], data=[1]), 400),
}


@pytest.mark.parametrize("case", IMAGE_CASES, ids=list(IMAGE_CASES))
def test_bad_images_are_4xx(image_client, case):
    body, status = IMAGE_CASES[case]
    r = image_client.post("/v2/models/img/infer", json=body)
    assert r.status_code == status, r.text
    assert r.json()["error"]
    assert image_client.post("/v2/models/img/infer", json=image_tensor()).status_code == 200


def test_bad_uploads_are_4xx(image_client):
    for files, status in (
        ([("files", ("x.png", b"not an image", "image/png"))], 422),
        ([("files", ("x.png", b"", "image/png"))], 422),
        ([("files", (f"{i}.png", png(np.zeros((4, 4), np.uint8)), "image/png")) for i in range(5)], 413),
        ([("files", ("big.png", b"\0" * 300_000, "image/png"))], 413),
    ):
        r = image_client.post("/predict", files=files)
        assert r.status_code == status, r.text
        assert r.json()["error"]
    r = image_client.post("/predict", json={"texts": ["x"]})
    assert r.status_code == 415 and "multipart" in r.json()["error"]
    ok = image_client.post("/predict", files=[("files", ("ok.png", png(np.zeros((4, 4), np.uint8)), "image/png"))])
    assert ok.status_code == 200 and ok.json()["predictions"][0]["input"] == "ok.png"


def test_unknown_routes_and_methods_are_json_4xx(client):
    r = client.get("/nowhere")
    assert r.status_code == 404 and r.json()["error"]
    r = client.get("/predict")
    assert r.status_code == 405 and r.json()["error"]


def test_a_model_error_fails_only_its_own_request(client):
    """An item that passed the checks but breaks the model: a 4xx (HeadstartError) or a JSON 500, the server lives."""
    from headstart.errors import DataError

    predictor = client.app.state.serve.predictor
    real = predictor.probabilities

    def breaks(items):
        if any("boom" in i for i in items):
            raise DataError("boom: this item cannot be used")
        return real(items)

    predictor.probabilities = breaks
    try:
        r = client.post("/predict", json={"texts": ["boom"]})
        assert r.status_code == 422 and "boom" in r.json()["error"]
    finally:
        predictor.probabilities = real
    assert client.post("/predict", json={"texts": ["fine"]}).status_code == 200
