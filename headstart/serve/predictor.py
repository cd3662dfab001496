"""What the server predicts with: a small `Predictor` protocol, met by a saved headstart model (torch) or by an
ONNX export folder (`headstart.runtime`, imported only when a folder holds `export.json`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

import numpy as np

from headstart.errors import BundleError, DataError

EXPORT_MANIFEST = "export.json"


class Predictor(Protocol):
    """Probabilities for every task from a list of items of the model's modality: texts (str), images (uint8
    arrays), audio (1-D float32 waveforms at the model's rate, or paths to audio files)."""

    modality: str
    tasks: list[str]

    def classes(self, task: str) -> list[str]: ...

    def probabilities(self, items: list[Any]) -> dict[str, np.ndarray]: ...

    def card(self) -> dict[str, Any]: ...


class TransferModelPredictor:
    """A `TransferModel`: the backbone runs once per batch, every head reads its features; nothing is cached."""

    kind = "headstart"

    def __init__(self, model: Any) -> None:
        self.model = model
        self.modality = model.modality
        self.tasks = list(model.tasks)

    def classes(self, task: str) -> list[str]:
        return [str(c) for c in self.model.heads[task].classes_]

    def probabilities(self, items: list[Any]) -> dict[str, np.ndarray]:
        from headstart.data import from_arrays

        ds = from_arrays(items, modality=self.modality)  # never `as_dataset`: a text is a text, not a file to read
        if len(ds.items) != len(items):
            raise DataError("; ".join(f"{i.where}: {i.problem}" for i in ds.issues) or "unusable items")
        x = self.model.embed(ds, cache=False, num_workers=0)  # no forking from the server's threads
        return {task: np.asarray(self.model.heads[task].predict_proba(x), dtype=np.float32) for task in self.tasks}

    def card(self) -> dict[str, Any]:
        m = self.model
        info = {k: v for k, v in m.backbone_info.items() if k != "preprocessing"}
        return {
            "format": self.kind,
            "modality": self.modality,
            "backbone": {"spec": m.backbone_info.get("architecture", m.backbone_spec), **info},
            "tasks": {t: {"head": m.heads[t].kind, "classes": self.classes(t)} for t in self.tasks},
            "metrics": m.metrics,
            "data": m.data_info,
        }


class ExportPredictor:
    """An ONNX export (`headstart.runtime.load_export`): one run of the graph answers every task."""

    kind = "onnx"

    def __init__(self, exported: Any) -> None:
        self.exported = exported
        self.modality = exported.modality
        self.tasks = list(exported.tasks)

    def classes(self, task: str) -> list[str]:
        return [str(c) for c in self.exported.classes(task)]

    def probabilities(self, items: list[Any]) -> dict[str, np.ndarray]:
        from headstart.runtime import probabilities_output

        if self.modality == "text" and any(_names_a_file(t) for t in items):
            raise DataError("a text that names a .txt file on the server is refused: send the text itself")
        out = self.exported.run(items)  # one pass of the graph gives every task's probabilities
        return {t: np.asarray(out[probabilities_output(t)], dtype=np.float32) for t in self.tasks}

    def card(self) -> dict[str, Any]:
        card = dict(self.exported.card())
        card.setdefault("format", self.kind)
        card.setdefault("modality", self.modality)
        card.setdefault("tasks", {t: {"classes": self.classes(t)} for t in self.tasks})
        return card


def _names_a_file(text: Any) -> bool:
    """The runtime reads a string ending in .txt that names a file as that file's text; a server must not."""
    return isinstance(text, str) and len(text) < 4096 and text.endswith(".txt") and Path(text).is_file()


def load_predictor(path: str | Path) -> Predictor:
    """A model folder as a Predictor: an ONNX export when it holds `export.json`, else a headstart bundle."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(f"{path}: not a model folder (a headstart model or an ONNX export)")
    if (path / EXPORT_MANIFEST).is_file():
        from headstart.runtime import load_export

        return ExportPredictor(load_export(path))
    from headstart.model import load_model

    return TransferModelPredictor(load_model(path))


def warm_up_items(modality: str) -> list[Any]:
    """One harmless input of `modality`, for the prediction that must pass before the server says it is ready."""
    if modality == "text":
        return ["warm-up"]
    if modality == "image":
        return [np.full((32, 32, 3), 128, dtype=np.uint8)]
    t = np.arange(16000, dtype=np.float32) / 16000
    return [(0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)]
