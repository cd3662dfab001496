"""Every endpoint on a real (tiny) text model, in process: OIP v2 health, metadata, infer; /predict; /card; the
pages; and the answers equal the model's own predictions."""

from __future__ import annotations

import re

import numpy as np
import pytest

from tests.conftest import make_texts
from tests.serve.conftest import client_for

TEXTS = make_texts(2, seed=7)[0]  # a business text, then a sport one


@pytest.fixture(scope="module")
def model(text_model_dir):
    from headstart.model import load_model

    return load_model(text_model_dir)


@pytest.fixture(scope="module")
def client(text_model_dir):
    with client_for(text_model_dir, name="news") as c:
        yield c


def infer_body(texts, **extra):
    return {"inputs": [{"name": "text", "shape": [len(texts)], "datatype": "BYTES", "data": texts}], **extra}


def test_health_and_server_metadata(client):
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get("/v2/models/news/ready").status_code == 200
    meta = client.get("/v2").json()
    assert meta["name"] == "headstart" and meta["extensions"] == []


def test_model_metadata(client):
    meta = client.get("/v2/models/news").json()
    assert meta["name"] == "news" and meta["platform"] == "headstart_pytorch"
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert meta["outputs"] == [
        {"name": "label", "datatype": "BYTES", "shape": [-1]},
        {"name": "label_probabilities", "datatype": "FP32", "shape": [-1, 2]},
    ]


def test_infer_answers_what_the_model_predicts(client, model):
    r = client.post("/v2/models/news/infer", json=infer_body(TEXTS, id="req-1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model_name"] == "news" and body["id"] == "req-1"
    out = {o["name"]: o for o in body["outputs"]}
    assert out["label"] == {"name": "label", "datatype": "BYTES", "shape": [2], "data": model.predict(TEXTS)}
    proba = out["label_probabilities"]
    assert proba["datatype"] == "FP32" and proba["shape"] == [2, 2]
    np.testing.assert_allclose(np.reshape(proba["data"], (2, 2)), model.predict_proba(TEXTS), atol=1e-5)


def test_infer_returns_only_the_outputs_asked_for(client):
    body = infer_body(TEXTS[:1], outputs=[{"name": "label_probabilities"}])
    outputs = client.post("/v2/models/news/infer", json=body).json()["outputs"]
    assert [o["name"] for o in outputs] == ["label_probabilities"]
    r = client.post("/v2/models/news/infer", json=infer_body(TEXTS[:1], outputs=[{"name": "nope"}]))
    assert r.status_code == 400 and "nope" in r.json()["error"]


def test_nested_data_and_shape_n_by_1_are_accepted(client, model):
    body = {"inputs": [{"name": "text", "shape": [2, 1], "datatype": "BYTES", "data": [[t] for t in TEXTS]}]}
    r = client.post("/v2/models/news/infer", json=body)
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == model.predict(TEXTS)


def test_a_wrong_model_name_is_404(client):
    for r in (
        client.get("/v2/models/other"),
        client.get("/v2/models/other/ready"),
        client.post("/v2/models/other/infer", json=infer_body(TEXTS)),
    ):
        assert r.status_code == 404 and "this server serves 'news'" in r.json()["error"]


def test_predict_rows_with_top_k(client, model):
    r = client.post("/predict", json={"texts": TEXTS, "top_k": 2})
    assert r.status_code == 200, r.text
    rows = r.json()["predictions"]
    proba = model.predict_proba(TEXTS)
    expected = model.predict_rows(TEXTS, top_k=2)
    for row, want, p in zip(rows, expected, proba):
        assert row["label"] == want["label"]
        assert row["label_probability"] == pytest.approx(want["label_probability"], abs=1e-5)
        assert [t["label"] for t in row["label_top"]] == [t["label"] for t in want["label_top"]]
        assert sorted(t["probability"] for t in row["label_top"]) == pytest.approx(sorted(p), abs=1e-5)
    assert [row["input"] for row in rows] == ["#0", "#1"]
    one = client.post("/predict", json={"texts": TEXTS[:1]}).json()["predictions"][0]
    assert len(one["label_top"]) == 1  # top_k defaults to 1


def test_card_names_backbone_labels_and_metrics(client, tiny_st_dir):
    card = client.get("/card").json()
    assert card["name"] == "news" and card["modality"] == "text" and card["format"] == "headstart"
    assert card["backbone"]["spec"] == f"st:{tiny_st_dir}"
    assert card["tasks"]["label"]["classes"] == ["business", "sport"]
    assert 0 <= card["metrics"]["label"]["accuracy"] <= 1
    assert card["limits"]["max_items"] == 64


def test_pages_are_offline_and_the_schema_lists_every_route(client):
    for path in ("/", "/docs"):
        r = client.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", r.text), f"{path} loads something from outside"
    paths = client.get("/openapi.json").json()["paths"]
    for route in ("/v2/models/{name}/infer", "/v2/models/{name}", "/v2/health/ready", "/predict", "/metrics"):
        assert route in paths
    assert "multipart/form-data" in paths["/predict"]["post"]["requestBody"]["content"]


def test_texts_that_name_server_files_are_texts(client, tmp_path, model):
    """`as_dataset` reads a .txt path as its file; the server must classify the string itself, not the file."""
    secret = tmp_path / "secret.txt"
    secret.write_text("the team won the match goal player")
    row = client.post("/predict", json={"texts": [str(secret)], "top_k": 2}).json()["predictions"][0]
    proba = dict(zip(model.classes, model.predict_proba([str(secret) + " "])[0]))  # the string, not the file
    assert row["label_probability"] == pytest.approx(max(proba.values()), abs=0.05)
