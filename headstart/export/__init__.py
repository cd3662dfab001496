"""ONNX export of a fitted model: backbone + heads as one graph, the parity gate, int8 quantisation.

    from headstart.export import export_onnx
    export_onnx("runs/digits", "exports/digits")            # or `headstart export runs/digits --out exports/digits`

The export folder is read by `headstart.runtime.load_export`, which needs no torch. See `graph.py` for what is in
the graph per modality.
"""

from __future__ import annotations

from headstart.export.errors import ExportError
from headstart.export.onnx_export import export_onnx
from headstart.export.parity import Tolerance

__all__ = ["ExportError", "Tolerance", "export_onnx"]
