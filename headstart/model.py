"""A fitted transfer model: a backbone spec plus one head per task. Predicts from raw inputs end to end."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from headstart.heads.base import TorchHead


@dataclass
class TransferModel:
    """`ŷ = head(backbone(x))` for each task. The backbone is created on first use, so loading a model is cheap."""

    backbone_spec: str
    backbone_info: dict[str, Any]
    heads: dict[str, TorchHead]
    metrics: dict[str, Any] = field(default_factory=dict)
    data_info: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict, repr=False)
    _backbone: Any = field(default=None, repr=False)
    # True when the backbone's weights were trained (fine-tuning): a saved bundle then carries them
    tuned_backbone: bool = False

    @property
    def modality(self) -> str:
        return str(self.backbone_info.get("modality", ""))

    @property
    def tasks(self) -> list[str]:
        return list(self.heads)

    @property
    def classes(self) -> list[str]:
        """Label names of the first task."""
        return [str(c) for c in self.heads[self.tasks[0]].classes_]

    @property
    def backbone(self) -> Any:
        if self._backbone is None:
            from headstart.backbones import create_backbone
            from headstart.backbones.local_source import restore_preprocessing

            backbone = create_backbone(self.backbone_spec)
            # the preprocessing the heads were fitted under wins over the spec's current defaults (e.g. a model saved
            # when speech-embedding trimmed 1 s windows and mean-pooled still gets those 96-d features)
            restore_preprocessing(backbone, self.backbone_info.get("preprocessing"))
            self._backbone = backbone
        return self._backbone

    def embed(
        self, inputs: Any, *, progress: bool = False, cache: bool = True, num_workers: int | None = None
    ) -> np.ndarray:
        """Features of `inputs`; `num_workers` DataLoader processes (None: as extraction chooses, 0: none)."""
        from headstart.features import extract_features

        ds = as_dataset(inputs, self.modality)
        return extract_features(self.backbone, ds, progress=progress, cache=cache, num_workers=num_workers)

    def predict_proba(self, inputs: Any, *, task: str | None = None, features: np.ndarray | None = None) -> np.ndarray:
        x = self.embed(inputs) if features is None else features
        return self.heads[task or self.tasks[0]].predict_proba(x)

    def predict(self, inputs: Any, *, task: str | None = None, features: np.ndarray | None = None) -> list[str]:
        """The label of each input for `task` (the first task by default), as scikit-learn's `predict` gives."""
        head = self.heads[task or self.tasks[0]]
        x = self.embed(inputs) if features is None else features
        return [str(c) for c in head.predict(x)]

    def predict_rows(self, inputs: Any, *, top_k: int = 1) -> list[dict[str, Any]]:
        """One row per input for every task: `input` (its file or position), the label, its probability, and with
        `top_k` > 1 the `top_k` best labels (`{task}_top`). What `headstart predict` prints."""
        ds = as_dataset(inputs, self.modality)
        x = self.embed(ds)
        rows: list[dict[str, Any]] = [{"input": w} for w in ds.where]
        for task in self.tasks:
            proba = self.heads[task].predict_proba(x)
            classes = [str(c) for c in self.heads[task].classes_]
            for row, p in zip(rows, proba, strict=True):
                best = np.argsort(-p)[:top_k]
                row[task] = classes[best[0]]
                row[f"{task}_probability"] = float(p[best[0]])
                if top_k > 1:
                    row[f"{task}_top"] = [{"label": classes[i], "probability": float(p[i])} for i in best]
        return rows

    def save(self, path: str | Path, *, extra_files: dict[str, Path] | None = None) -> Path:
        """The model as a bundle folder (see `headstart.bundle`), written atomically."""
        from headstart import bundle

        tensors, tasks = {}, {}
        for task, head in self.heads.items():
            for name, tensor in head.state_tensors().items():
                tensors[f"{task}/{name}"] = tensor
            classes = [str(c) for c in head.classes_]
            tasks[task] = {"head": head.kind, "params": head.fitted_params(), "classes": classes}
            if getattr(head, "chosen_", None):
                tasks[task]["chosen"] = head.chosen_
        manifest = {
            "format": bundle.FORMAT,
            "format_version": bundle.FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "backbone": self._backbone_section(),
            "tasks": tasks,
            "metrics": self.metrics,
            "data": self.data_info,
            "versions": bundle.library_versions(),
        }
        spec = manifest["backbone"]["spec"]
        copy = None
        if spec.startswith("local:") and not spec.startswith("local:./"):  # a folder outside: it travels inside
            manifest["backbone"]["spec"] = f"local:./{bundle.BACKBONE_DIR}"
            copy = _copy_backbone_folder(Path(spec[len("local:") :]))
        module = self.backbone.module if self.tuned_backbone else None
        return bundle.write_folder(
            path, manifest, tensors=tensors, backbone_module=module, extra_files=extra_files, more=copy
        )

    def _backbone_section(self) -> dict[str, Any]:
        """The manifest's backbone section: `spec` names the architecture; `weights` the tuned weights file, if any."""
        from headstart.bundle import BACKBONE_WEIGHTS

        info = {k: v for k, v in self.backbone_info.items() if k != "architecture"}
        if not self.tuned_backbone:
            return {**info, "spec": self.backbone_spec, "weights": None}
        return {**info, "spec": self.backbone_info.get("architecture", self.backbone_spec), "weights": BACKBONE_WEIGHTS}


def _copy_backbone_folder(folder: Path) -> Any:
    """A writer (for `bundle.write_folder`'s `more`) that copies a `local:` backbone folder into the model's
    `backbone/` subfolder: its manifest, its weights and the subfolders its spec names (`./tokenizer`), nothing else
    (a pretraining run's checkpoints stay behind). A model folder so saved needs nothing outside itself."""
    import shutil

    from headstart import bundle

    manifest = bundle.read_manifest(folder)
    section = manifest.get("backbone") or {}
    names = [bundle.MANIFEST, section.get("weights") or "", *(manifest.get("files") or {})]
    inner = str(section.get("spec", ""))
    subdirs = [inner.split(":", 1)[1][2:].split("?")[0]] if ":./" in inner else []

    def copy(tmp: Path) -> None:
        target = tmp / bundle.BACKBONE_DIR
        shutil.rmtree(target, ignore_errors=True)  # a re-save carries the old copy over first
        target.mkdir()
        for name in filter(None, names):
            if (folder / name).is_file() and bundle.inside(folder, folder / name):
                shutil.copy2(folder / name, target / name)
        for sub in subdirs:
            if (folder / sub).is_dir() and bundle.inside(folder, folder / sub):
                shutil.copytree(folder / sub, target / sub)

    return copy


def _contained_spec(path: Path, spec: str, *, trust_local_paths: bool) -> str:
    """A `local:` spec read from the manifest of the model folder `path`: `local:./x` must stay inside the folder;
    any other folder is followed only when the caller trusts the model (`trust_local_paths=True`)."""
    from headstart.bundle import MANIFEST, inside
    from headstart.errors import BundleError

    if spec.startswith("concat:"):  # each part is checked as a spec of its own
        parts = [s.strip() for s in spec[len("concat:") :].split(" + ")]
        return "concat:" + " + ".join(_contained_spec(path, p, trust_local_paths=trust_local_paths) for p in parts)
    if not spec.startswith("local:"):
        return spec
    rest = spec[len("local:") :]
    if rest.startswith("./"):
        target = path / rest[2:]
        if not inside(path, target):
            raise BundleError(f"{path / MANIFEST}: backbone spec {spec!r} leads out of the model folder; refused")
        return f"local:{target.resolve()}"
    if not trust_local_paths:
        raise BundleError(
            f"{path / MANIFEST}: the backbone is the folder {rest}, outside the model folder; refused, since a model "
            "folder may come from anyone (load it with trust_local_paths=True if you trust it, and save it again to "
            "copy the backbone in)"
        )
    return spec


def load_model(path: str | Path, *, trust_local_paths: bool = False) -> TransferModel:
    """A model saved by `TransferModel.save` (or `headstart fit --out`): heads rebuilt from the manifest and
    safetensors; a fine-tuned backbone is loaded through `local:` from the same folder, on first use.

    Safe on a folder from anyone: the manifest is checked against `headstart.bundle.SCHEMA`, every weight file
    against its SHA-256, nothing is unpickled, and no path leads out of the folder unless `trust_local_paths`."""
    from headstart.bundle import MANIFEST, read_bundle
    from headstart.errors import BundleError
    from headstart.heads import HEADS

    path = Path(path)
    manifest, tensors = read_bundle(path)
    heads = {}
    for task, entry in manifest["tasks"].items():
        kind = entry.get("head")
        if kind not in HEADS:
            raise BundleError(f"{path / MANIFEST}: task {task!r} has unknown head {kind!r}")
        state = {k.split("/", 1)[1]: v for k, v in tensors.items() if k.split("/", 1)[0] == task}
        try:
            heads[task] = HEADS[kind].from_state(entry.get("params", {}), entry["classes"], state)
        except (KeyError, RuntimeError, TypeError) as exc:
            raise BundleError(f"{path}: weights of task {task!r} do not match its manifest ({exc})") from None
    backbone = dict(manifest["backbone"])
    spec = _contained_spec(path, backbone.pop("spec"), trust_local_paths=trust_local_paths)
    tuned = bool(backbone.get("weights"))
    if tuned:  # fine-tuned weights live in this folder: `local:` builds the architecture and loads them
        backbone["architecture"] = spec
        spec = f"local:{path.resolve()}"
    return TransferModel(
        backbone_spec=spec,
        backbone_info=backbone,
        heads=heads,
        metrics=manifest.get("metrics", {}),
        data_info=manifest.get("data", {}),
        tuned_backbone=tuned,
    )


def as_dataset(inputs: Any, modality: str) -> Any:
    """Prediction inputs: a Dataset, a source (folder, table, samples:NAME), or a list of texts, paths or arrays."""
    from headstart.data import Dataset, from_arrays, load_data

    if isinstance(inputs, Dataset):
        return inputs
    if isinstance(inputs, (str, Path)) and (Path(inputs).exists() or str(inputs).startswith("samples:")):
        if not (modality == "text" and Path(inputs).suffix == ".txt") and not _audio_file(inputs, modality):
            return load_data(inputs, modality=modality or None)
    batch_ndim = 2 if modality == "audio" else 3  # N waveforms, or N images
    if isinstance(inputs, (str, Path, np.ndarray)) and not (
        isinstance(inputs, np.ndarray) and inputs.ndim >= batch_ndim
    ):
        inputs = [inputs]
    items: Sequence[Any] = list(inputs)
    if modality == "text":
        items = [Path(i).read_text(encoding="utf-8") if _is_text_file(i) else str(i) for i in items]
    elif modality in ("image", "audio"):
        items = [Path(i) if isinstance(i, str) else i for i in items]
    ds = from_arrays(items, modality=modality or None)
    if all(isinstance(i, Path) for i in items):  # name files by their path, not by position
        ds.where = [str(i) for i in items]
    return ds


def _audio_file(item: Any, modality: str) -> bool:
    from headstart.data.audio import AUDIO_EXTENSIONS

    return modality == "audio" and Path(item).is_file() and Path(item).suffix.lower() in AUDIO_EXTENSIONS


def _is_text_file(item: Any) -> bool:
    return (
        isinstance(item, (str, Path)) and len(str(item)) < 4096 and str(item).endswith(".txt") and Path(item).is_file()
    )
