"""Prediction from an exported model (`headstart export`) with onnxruntime and numpy only: no torch.

    from headstart.runtime import load_export
    model = load_export("exports/digits")
    model.predict(["a.png", "b.png"])          # labels of the first task
    model.predict_proba(images)                # (items, classes)
    model.embed(images)                        # the backbone's features, (items, dims)

An export folder holds `model.onnx` (backbone + heads as one graph: preprocessing after the resize / tokenisation /
decoding, pooling, normalisation and softmax inside), `export.json` (its manifest: inputs, outputs, label names,
preprocessing, backbone, metrics, parity figures) and, for text, `tokenizer.json`. Decoding the raw inputs is the
runtime's own small code (`headstart.runtime.inputs`): Pillow, tokenizers, soundfile.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from headstart.errors import BundleError, DataError

EXPORT_FORMAT = "headstart-export"
EXPORT_FORMAT_VERSION = 1
EXPORT_MANIFEST = "export.json"
MODEL_FILE = "model.onnx"
WEIGHTS_FILE = "model.onnx.data"  # external weights, for graphs over the size where protobuf gets awkward
TOKENIZER_FILE = "tokenizer.json"
FEATURES = "features"


def probabilities_output(task: str) -> str:
    """The graph output holding `task`'s class probabilities."""
    return f"probabilities_{task}"


def read_export_manifest(path: str | Path) -> dict[str, Any]:
    """An export folder's manifest, checked to be one; a BundleError says what is wrong."""
    path = Path(path)
    file = path / EXPORT_MANIFEST
    if not path.is_dir():
        raise BundleError(f"{path}: no such export folder")
    if not file.is_file():
        hint = (
            " (it is a model bundle: run `headstart export` on it first)" if (path / "headstart.json").is_file() else ""
        )
        raise BundleError(f"{path}: not an exported model (no {EXPORT_MANIFEST}){hint}")
    try:
        manifest = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{file}: not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != EXPORT_FORMAT:
        raise BundleError(f"{file}: not a headstart export manifest")
    if not (path / manifest.get("model", MODEL_FILE)).is_file():
        raise BundleError(f"{path}: {manifest.get('model', MODEL_FILE)} is missing")
    return manifest


def session_options(threads: int | None = None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = int(threads)
    return options


class ExportedModel:
    """An exported model loaded into an onnxruntime session; the same questions a `TransferModel` answers."""

    def __init__(self, path: str | Path, *, threads: int | None = None, batch_size: int = 32) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        self.manifest = read_export_manifest(self.path)
        self.batch_size = int(batch_size)
        try:
            self.session = ort.InferenceSession(
                str(self.path / self.manifest.get("model", MODEL_FILE)),
                sess_options=session_options(threads),
                providers=["CPUExecutionProvider"],
            )
        except Exception as exc:  # onnxruntime's own error types: a corrupt or foreign file
            raise BundleError(
                f"{self.path}: onnxruntime cannot load the model ({str(exc).splitlines()[0][:200]})"
            ) from None
        self.preprocessing: dict[str, Any] = dict(self.manifest.get("preprocessing") or {})
        self._encoder = None
        if self.modality == "text":
            from headstart.runtime.inputs import TextEncoder

            self._encoder = TextEncoder(self.path / TOKENIZER_FILE, self.manifest.get("text") or {})

    @property
    def modality(self) -> str:
        return str(self.manifest["modality"])

    @property
    def tasks(self) -> list[str]:
        return list(self.manifest["tasks"])

    def classes(self, task: str | None = None) -> list[str]:
        return [str(c) for c in self.manifest["tasks"][self._task(task)]["classes"]]

    def _task(self, task: str | None) -> str:
        if task is None:
            return self.tasks[0]
        if task not in self.manifest["tasks"]:
            raise DataError(f"the model has no task {task!r}; it has: {', '.join(self.tasks)}")
        return task

    # -- inputs ---------------------------------------------------------------------------------------------------

    def items(self, inputs: Any) -> list[Any]:
        """Inputs as a list of items: one text / path / array is a list of one; a batch array is split into rows."""
        if isinstance(inputs, (str, os.PathLike)):
            return [inputs]
        if isinstance(inputs, np.ndarray):
            batch_ndim = 2 if self.modality == "audio" else 4 if inputs.ndim == 4 else 3 + (inputs.shape[-1] in (3, 4))
            return list(inputs) if inputs.ndim >= batch_ndim else [inputs]
        return list(inputs)

    def prepare(self, items: Sequence[Any]) -> dict[str, np.ndarray]:
        """A batch of items as the graph's inputs (see `headstart.runtime.inputs`)."""
        from headstart.runtime import inputs as prep

        if self.modality == "text":
            assert self._encoder is not None
            return self._encoder([prep.text_of(i) for i in items])
        if self.modality == "image":
            return {"images": np.stack([prep.prepare_image(i, self.preprocessing) for i in items])}
        if self.modality == "audio":
            return {"waveforms": np.stack([prep.prepare_audio(i, self.preprocessing) for i in items])}
        raise BundleError(f"{self.path}: unknown modality {self.modality!r}")

    def batches(self, inputs: Any) -> Iterator[dict[str, np.ndarray]]:
        """Graph outputs (by name) for each batch of `batch_size` inputs."""
        items = self.items(inputs)
        names = [o.name for o in self.session.get_outputs()]
        for start in range(0, len(items), self.batch_size):
            feed = self.prepare(items[start : start + self.batch_size])
            yield dict(zip(names, self.session.run(None, feed), strict=True))

    def run(self, inputs: Any) -> dict[str, np.ndarray]:
        """Every output of the graph (features and each task's probabilities) for every input."""
        parts = list(self.batches(inputs))
        if not parts:
            return {o.name: np.zeros((0, *[d if isinstance(d, int) else 0 for d in o.shape[1:]]), np.float32)
                    for o in self.session.get_outputs()}  # fmt: skip
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    # -- answers --------------------------------------------------------------------------------------------------

    def embed(self, inputs: Any) -> np.ndarray:
        return self.run(inputs)[FEATURES]

    def predict_proba(self, inputs: Any, task: str | None = None) -> np.ndarray:
        return self.run(inputs)[probabilities_output(self._task(task))]

    def predict(self, inputs: Any, task: str | None = None) -> list[str]:
        classes = self.classes(task)
        return [classes[i] for i in self.predict_proba(inputs, task).argmax(1)]

    def predict_rows(self, inputs: Any, top_k: int = 1, where: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """One row per input for every task, as `TransferModel.predict_rows` gives: `input` (its path, or
        `item #i`), the label and its probability, and with `top_k` > 1 the `top_k` best (`{task}_top`)."""
        items = self.items(inputs)
        if where is None:
            where = [str(i) if isinstance(i, (os.PathLike, str)) and self.modality != "text" else f"item #{n}"
                     for n, i in enumerate(items)]  # fmt: skip
        out = self.run(items)
        rows: list[dict[str, Any]] = [{"input": w} for w in where]
        for task in self.tasks:
            classes = self.classes(task)
            for row, p in zip(rows, out[probabilities_output(task)], strict=True):
                best = np.argsort(-p, kind="stable")[:top_k]
                row[task] = classes[best[0]]
                row[f"{task}_probability"] = float(p[best[0]])
                if top_k > 1:
                    row[f"{task}_top"] = [{"label": classes[i], "probability": float(p[i])} for i in best]
        return rows

    def card(self) -> dict[str, Any]:
        """What the model is: backbone, tasks and labels, preprocessing, metrics, parity, quantisation, source."""
        m = self.manifest
        return {
            "path": str(self.path),
            "modality": self.modality,
            "backbone": m.get("backbone", {}),
            "labels": {t: self.classes(t) for t in self.tasks},
            "preprocessing": self.preprocessing,
            "inputs": m.get("inputs", []),
            "metrics": m.get("metrics", {}),
            "parity": m.get("parity", {}),
            "quantization": m.get("quantization"),
            "source": m.get("source", {}),
            "exporter": m.get("exporter", {}),
        }


def load_export(path: str | Path, *, threads: int | None = None, batch_size: int = 32) -> ExportedModel:
    """An export folder written by `headstart export` (or `headstart.export.export_onnx`), ready to predict."""
    return ExportedModel(path, threads=threads, batch_size=batch_size)


__all__ = ["ExportedModel", "load_export", "read_export_manifest"]
