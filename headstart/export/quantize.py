"""Int8 with ONNX Runtime's quantisation tools.

- dynamic (transformers): weights of the MatMul layers int8 per channel, activations quantised on the fly; no
  calibration. Embedding lookups and the heads stay fp32.
- static (CNNs): QDQ format, weights int8 per channel, activations uint8 with ranges calibrated (min / max) on
  calibration items. The first layers (those fed by the input through no other Conv / MatMul: an image stem,
  speech_embedding's DFT front end) stay fp32. Images: every other op ONNX Runtime quantises; audio: the convolutions
  only, since the mel front end's power spectra and logarithms span 80 dB. Measured on the held-out digits /
  spoken digits (16 labels per class): Lite0 0.847 fp32, 0.800 all ops, 0.840 all but the stem, 0.327 convolutions
  only; speech_embedding 0.947 fp32, 0.760 all but the front end, 0.953 its convolutions only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from headstart.export.errors import ExportError

MODES = ("dynamic", "static")
FUSED_DYNAMIC = ("MatMul", "Attention", "EmbedLayerNormalization")  # a fused transformer: its weights, embeddings too


class _Reader:
    """onnxruntime's CalibrationDataReader protocol over a list of feeds."""

    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self._feeds: Iterator[dict[str, np.ndarray]] = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # not used by MinMax calibration; part of the protocol
        pass


def quantize(
    mode: str,
    fp32: Path,
    int8: Path,
    *,
    calibration: list[dict[str, np.ndarray]] | None = None,
    external: bool = False,
    modality: str = "image",
    fused: bool = False,
) -> dict[str, Any]:
    """Write the int8 model of `fp32` to `int8`; returns the settings used. `fused`: a transformer graph with
    ONNX Runtime's fused ops (`headstart.export.fusion`), whose Attention and embedding nodes are quantised too."""
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static

    if mode not in MODES:
        raise ExportError(f"--quantize takes {' or '.join(MODES)}, not {mode!r}")
    try:
        if mode == "dynamic" and fused:  # the contrib ops carry no inferred types: float is their default
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=list(FUSED_DYNAMIC), use_external_data_format=external,
                             extra_options={"DefaultTensorType": 1})  # fmt: skip
            return {"mode": "dynamic", "weights": "int8 per channel", "ops": list(FUSED_DYNAMIC)}
        if mode == "dynamic":
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"], use_external_data_format=external)  # fmt: skip
            return {"mode": "dynamic", "weights": "int8 per channel", "ops": ["MatMul"]}
        if not calibration:
            raise ExportError("--quantize static needs calibration items: give --calibrate DATA or --check DATA")
        source = _preprocessed(fp32)
        kept = first_layers(source)
        ops = ["Conv"] if modality == "audio" else None  # None: every op type ONNX Runtime can quantise
        quantize_static(str(source), str(int8), _Reader(calibration), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=ops, nodes_to_exclude=kept, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        use_external_data_format=external)  # fmt: skip
        return {"mode": "static", "format": "QDQ", "ops": ops or "all", "kept_fp32": kept,
                "weights": "int8 per channel", "activations": "uint8 (min/max)",
                "calibration_items": sum(len(next(iter(f.values()))) for f in calibration)}  # fmt: skip
    except ExportError:
        raise
    except Exception as exc:
        raise ExportError(f"int8 quantisation ({mode}) failed: {type(exc).__name__}: {str(exc)[:300]}") from None


def first_layers(path: Path) -> list[str]:
    """Names of the Conv / MatMul / Gemm nodes that no other such node feeds (the graph's nodes are in topological
    order): the layers nearest the input, which quantisation hurts most."""
    import onnx

    heavy = {"Conv", "MatMul", "Gemm"}
    downstream: set[str] = set()
    first = []
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        fed = any(name in downstream for name in node.input)
        if node.op_type in heavy and not fed:
            first.append(node.name)
        if node.op_type in heavy or fed:
            downstream.update(node.output)
    return first


def _preprocessed(fp32: Path) -> Path:
    """onnxruntime's recommended pre-processing (shape inference, batch norm folded into convolutions) when it works;
    the plain model otherwise."""
    out = fp32.with_name("preprocessed.onnx")
    try:
        from onnxruntime.quantization.shape_inference import quant_pre_process

        quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
        return out
    except Exception:
        return fp32


def files_bytes(folder: Path, names: list[str]) -> int:
    return sum((folder / n).stat().st_size for n in names if (folder / n).is_file())
