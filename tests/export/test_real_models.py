"""The shipped models export and pass the parity gate at the default tolerances (slow: real weights)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def _fit_and_export(spec: str, source: str, tmp_path: Path, quantize: str) -> dict:
    import headstart as hs
    from headstart.data import load_data
    from headstart.export import export_onnx

    ds = load_data(source)
    rng = np.random.default_rng(0)
    labels = np.asarray(ds.labels)
    train = [int(i) for c in sorted(set(labels)) for i in rng.choice(np.flatnonzero(labels == c), 8, replace=False)]
    rest = np.setdiff1d(np.arange(len(labels)), train)
    check = ds.subset(sorted(rng.choice(rest, 60, replace=False)))
    hs.fit(ds.subset(sorted(train)), backbone=spec, out=tmp_path / "model", strategy="probe", test_size=0,
           baseline=False, progress=False)  # fmt: skip
    fp32 = export_onnx(tmp_path / "model", tmp_path / "fp32", check=check)
    int8 = export_onnx(tmp_path / "model", tmp_path / "int8", check=check, quantize=quantize, force=True)
    return {"fp32": fp32, "int8": int8, "check": check}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("spec", "source", "quantize"),
    [
        ("headstart:efficientnet-lite0", "samples:digits", "static"),
        ("st:all-MiniLM-L6-v2", "samples:bbc-news", "dynamic"),
    ],
)
def test_shipped_model_exports_with_parity(spec: str, source: str, quantize: str, tmp_path: Path) -> None:
    from headstart.model import load_model
    from headstart.runtime import load_export

    done = _fit_and_export(spec, source, tmp_path, quantize)
    parity = done["fp32"]["parity"]
    assert parity["passed"] and parity["top1_agreement"] == 1.0, parity
    q = done["int8"]["quantization"]
    assert q["size_ratio"] < 0.35 and q["accuracy_int8"] > 0.5, q  # Lite0 0.29; fused MiniLM 0.25 (embeddings int8)
    if spec.startswith("st:"):  # BERT: one fused Attention node per layer
        assert done["fp32"]["exporter"]["fusion"]["ops"]["Attention"] == 6, done["fp32"]["exporter"]
    items = done["check"].items[:5]
    exported, model = load_export(tmp_path / "fp32"), load_model(tmp_path / "model")
    assert exported.predict(items) == model.predict(items)
