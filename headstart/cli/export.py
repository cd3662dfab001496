"""`export`: a saved model as one ONNX graph (backbone + heads), checked against PyTorch, optionally int8."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer
from rich.markup import escape

from headstart.cli import options as o
from headstart.cli.output import console, err


class ExportFormat(str, Enum):
    onnx = "onnx"


class Quantize(str, Enum):
    dynamic = "dynamic"
    static = "static"


class Exporter(str, Enum):
    auto = "auto"
    dynamo = "dynamo"
    torchscript = "torchscript"


def export(
    model_dir: Path = typer.Argument(..., help="a folder saved by `headstart fit`"),
    out: Path = typer.Option(..., "--out", "-o", help="the export folder to write (model.onnx, export.json, ...)"),
    fmt: ExportFormat = typer.Option("onnx", "--format", help="the export format"),
    check: str = typer.Option(
        None, "--check", help="held-out labelled data to compare ONNX Runtime with PyTorch on (default: generated)"
    ),
    quantize: Quantize = typer.Option(
        None, "--quantize", help="int8: dynamic (transformers) or static (CNNs, calibrated on --calibrate / --check)"
    ),
    calibrate: str = typer.Option(None, "--calibrate", help="--quantize static: calibration items (default: --check)"),
    force: bool = typer.Option(False, "--force", help="write an int8 model even if it loses more than 1 point"),
    feature_tolerance: float = typer.Option(
        1e-4, "--feature-tolerance", help="fp32: largest |diff| of features (times their magnitude, above 1)"
    ),
    probability_tolerance: float = typer.Option(
        1e-4, "--probability-tolerance", help="fp32: largest |diff| of probabilities"
    ),
    exporter: Exporter = typer.Option("auto", "--exporter", help="auto: torch's dynamo exporter, else TorchScript's"),
    text_column: str = o.TEXT_COLUMN,
    label_column: list[str] = o.LABEL_COLUMNS,
) -> None:
    """Export a saved model to ONNX (one graph: preprocessing after decoding, backbone, pooling, heads, softmax),
    compare ONNX Runtime with PyTorch at batch sizes 1, 3 and 17, and write it only if they agree.

    Predict from the export without torch: `headstart predict EXPORT_DIR INPUTS --runtime onnx`."""
    from headstart.export import Tolerance, export_onnx

    o.refuse(["calibrate"] if calibrate and (quantize is None or quantize.value != "static") else [],
             "applies to --quantize static")  # fmt: skip
    o.refuse(["force"] if force and quantize is None else [], "applies to --quantize")
    tolerance = Tolerance(features=feature_tolerance, probabilities=probability_tolerance)
    manifest = export_onnx(
        model_dir,
        out,
        check=check,
        calibrate=calibrate,
        quantize=quantize.value if quantize else None,
        force=force,
        tolerance=tolerance,
        exporter=exporter.value,
        text_column=text_column,
        label_columns=list(label_column) if label_column else None,
        log=lambda line: err.print(f"[dim]{escape(line)}[/dim]", highlight=False),
    )
    from headstart.export.parity import summary

    how = manifest["exporter"]
    console.print(f"exported with torch.onnx ({how['exporter']}, opset {how['opset']})", highlight=False)
    if "dynamo_failed" in how:
        console.print(
            f"the dynamo exporter failed ({escape(how['dynamo_failed'])}); used TorchScript's", highlight=False
        )
    console.print(f"parity, ONNX Runtime vs PyTorch: {summary(manifest['parity'])}", highlight=False)
    if "check" in manifest:
        c = manifest["check"]
        console.print(f"accuracy on {c['items']} check items ({c['task']}): {c['accuracy']:.4f}", highlight=False)
    q = manifest.get("quantization")
    if q:
        line = f"int8 ({q['mode']}): {q['size_ratio']:.2f} x the fp32 size"
        if "accuracy_change" in q:
            line += f", accuracy {q['accuracy_int8']:.4f} ({100 * q['accuracy_change']:+.1f} points vs fp32)"
        line += f", top-1 agreement with fp32 {100 * q['top1_agreement_vs_fp32']:.1f}%"
        console.print(line + (" (forced)" if q.get("forced") else ""), highlight=False)
    console.print(f"wrote [bold]{out}[/bold]")
