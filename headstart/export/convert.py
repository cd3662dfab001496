"""torch -> ONNX: the dynamo exporter first, TorchScript's as the fallback; metadata; external weights; the checker."""

from __future__ import annotations

import json
import logging
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from headstart.export.errors import ExportError
from headstart.runtime import WEIGHTS_FILE

OPSET = 18
EXTERNAL_DATA_BYTES = 100 * 2**20  # weights beyond ~100 MB go to model.onnx.data (protobuf stops at 2 GB)


@contextmanager
def _quiet():
    """The exporters' progress chatter and warnings belong in the manifest's `exporter` field, not on the terminal."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "torch._dynamo", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def export_graph(
    graph: torch.nn.Module,
    example: dict[str, torch.Tensor],
    dynamic: dict[str, tuple[int, ...]],
    outputs: list[str],
    *,
    opset: int = OPSET,
    max_length: int | None = None,
    exporter: str = "auto",
) -> tuple[Any, dict[str, Any]]:
    """(onnx ModelProto, how it was made). `exporter`: auto (dynamo, falling back to TorchScript), dynamo or
    torchscript. An ExportError when neither works."""
    tried: dict[str, str] = {}
    if exporter in ("auto", "dynamo"):
        try:
            with _quiet(), torch.no_grad():
                proto = _dynamo(graph, example, dynamic, outputs, opset, max_length)
            return proto, {"exporter": "dynamo", "opset": opset, "torch": torch.__version__}
        except Exception as exc:  # any failure of torch.export / onnxscript: try the other exporter
            tried["dynamo"] = _reason(exc)
    if exporter in ("auto", "torchscript"):
        try:
            with _quiet(), torch.no_grad():
                proto = _torchscript(graph, example, dynamic, outputs, min(opset, 17))
            info = {"exporter": "torchscript", "opset": min(opset, 17), "torch": torch.__version__}
            if "dynamo" in tried:
                info["dynamo_failed"] = tried["dynamo"]
            return proto, info
        except Exception as exc:
            tried["torchscript"] = _reason(exc)
    raise ExportError("the model could not be exported to ONNX: " + "; ".join(f"{k}: {v}" for k, v in tried.items()))


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _dynamo(graph, example, dynamic, outputs, opset, max_length) -> Any:
    from torch.export import Dim

    dims = {"batch": Dim("batch", min=1, max=1 << 16)}
    if max_length:
        dims["seq"] = Dim("seq", min=1, max=int(max_length))
    shapes = {
        name: {axis: dims["batch" if axis == 0 else "seq"] for axis in axes if axis == 0 or "seq" in dims}
        for name, axes in dynamic.items()
    }
    program = torch.onnx.export(
        graph,
        (),
        kwargs=example,
        dynamo=True,
        dynamic_shapes=shapes,
        input_names=list(example),
        output_names=outputs,
        opset_version=opset,
        optimize=True,
        verbose=False,
    )
    return program.model_proto


def _torchscript(graph, example, dynamic, outputs, opset) -> Any:
    import io

    import onnx

    names = {0: "batch", 1: "sequence"}
    axes = {name: {a: names[a] for a in dims} for name, dims in dynamic.items()}
    axes.update({name: {0: "batch"} for name in outputs})
    buffer = io.BytesIO()
    torch.onnx.export(
        graph,
        tuple(example.values()),
        buffer,
        dynamo=False,
        input_names=list(example),
        output_names=outputs,
        dynamic_axes=axes,
        opset_version=opset,
        do_constant_folding=True,
    )
    return onnx.load_from_string(buffer.getvalue())


def set_metadata(proto: Any, metadata: dict[str, Any]) -> None:
    """Key/value strings in the model's metadata_props (values that are not strings as JSON)."""
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key = key
        entry.value = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    proto.producer_name = "headstart"


def weight_bytes(proto: Any) -> int:
    from onnx import numpy_helper

    total = 0
    for init in proto.graph.initializer:
        total += len(init.raw_data) if init.raw_data else numpy_helper.to_array(init).nbytes
    return total


def save(proto: Any, path: Path, *, external: bool | None = None) -> None:
    """Write the model; weights over EXTERNAL_DATA_BYTES (or `external=True`) as model.onnx.data beside it."""
    import onnx

    if external is None:
        external = weight_bytes(proto) > EXTERNAL_DATA_BYTES
    if external:
        onnx.save_model(proto, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=WEIGHTS_FILE, size_threshold=1024)  # fmt: skip
    else:
        onnx.save_model(proto, str(path))


def check(path: Path) -> None:
    """onnx's full check (types and shapes inferred) of the saved file; an ExportError if it fails."""
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        raise ExportError(f"the exported graph fails onnx.checker: {_reason(exc)}") from None
