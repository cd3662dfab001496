"""`headstart.runtime`: an export folder predicts with onnxruntime, numpy, Pillow, tokenizers, soundfile: no torch."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from tests.export.conftest import image_arrays

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def image_export(image_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from headstart.export import export_onnx

    out = tmp_path_factory.mktemp("runtime") / "image"
    export_onnx(image_model, out)
    return out


@pytest.fixture(scope="module")
def text_export(text_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    from headstart.export import export_onnx

    out = tmp_path_factory.mktemp("runtime") / "text"
    export_onnx(text_model, out)
    return out


def _run_without_torch(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints JSON. Fails if torch (or torchvision, transformers, timm,
    sentence_transformers) was imported on the way."""
    script = textwrap.dedent(code) + textwrap.dedent("""
        heavy = ("torch", "torchvision", "transformers", "timm", "sentence_transformers")
        heavy = [m for m in heavy if m in sys.modules]
        assert not heavy, f"imported {heavy}"
    """)
    done = subprocess.run([sys.executable, "-c", "import sys, json\n" + script], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_image_runtime_never_imports_torch(image_export: Path, image_model: Path, tmp_path: Path) -> None:
    from PIL import Image

    from headstart.model import load_model

    images, _ = image_arrays(5, seed=7)
    paths = []
    for i, image in enumerate(images):
        paths.append(str(tmp_path / f"{i}.png"))
        Image.fromarray(image).save(paths[-1])
    np.save(tmp_path / "arrays.npy", images)
    got = _run_without_torch(f"""
        import numpy as np
        from headstart.runtime import load_export
        model = load_export({str(image_export)!r})
        arrays = np.load({str(tmp_path / "arrays.npy")!r})
        print(json.dumps({{
            "paths": model.predict({paths!r}),
            "arrays": model.predict(list(arrays)),
            "batch": model.predict(arrays),
            "rows": model.predict_rows({paths!r}, top_k=2),
            "embed": model.embed(arrays).shape,
            "proba": model.predict_proba(arrays).tolist(),
            "card": model.card()["labels"],
            "modality": model.modality, "tasks": model.tasks, "classes": model.classes(),
        }}))
    """)
    model = load_model(image_model)
    expected = model.predict([Path(p) for p in paths])
    assert got["paths"] == got["arrays"] == got["batch"] == expected
    assert [r["input"] for r in got["rows"]] == paths and len(got["rows"][0]["label_top"]) == 2
    assert got["embed"] == [5, 64] and got["modality"] == "image" and got["tasks"] == ["label"]
    assert got["classes"] == model.classes == got["card"]["label"]
    assert np.abs(np.array(got["proba"]) - model.predict_proba(list(images))).max() < 1e-3


def test_text_runtime_never_imports_torch(text_export: Path, text_model: Path) -> None:
    from headstart.model import load_model

    texts = ["the bank shares fell", "the team won the match", "  profit rose  "]
    got = _run_without_torch(f"""
        from headstart.runtime import load_export
        model = load_export({str(text_export)!r})
        print(json.dumps({{"labels": model.predict({texts!r}), "proba": model.predict_proba({texts!r}).tolist()}}))
    """)
    model = load_model(text_model)
    assert got["labels"] == model.predict(texts)
    assert np.abs(np.array(got["proba"]) - model.predict_proba(texts)).max() < 1e-5


def test_runtime_errors_are_one_line(tmp_path: Path, image_model: Path) -> None:
    from headstart.errors import BundleError
    from headstart.runtime import load_export

    with pytest.raises(BundleError, match="no such export folder"):
        load_export(tmp_path / "missing")
    with pytest.raises(BundleError, match="it is a model bundle: run `headstart export`"):
        load_export(image_model)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "export.json").write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        load_export(tmp_path / "broken")
