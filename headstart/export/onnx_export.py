"""`export_onnx`: a saved model as one ONNX graph, checked against PyTorch before anything is written.

Steps: build the graph module (`graph.py`), export it (`convert.py`), save and check it in a temporary folder beside
`out`, compare ONNX Runtime with PyTorch at batch sizes 1, 3 and 17 (`parity.py`; a failure removes everything),
optionally quantise to int8 and compare accuracy on labelled check data (`quantize.py`), then write export.json and
rename the folder into place.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from headstart.export import parity as par
from headstart.export.errors import ExportError
from headstart.runtime import (
    EXPORT_FORMAT,
    EXPORT_FORMAT_VERSION,
    EXPORT_MANIFEST,
    FEATURES,
    MODEL_FILE,
    TOKENIZER_FILE,
    WEIGHTS_FILE,
    probabilities_output,
)

MAX_CHECK_ITEMS = 2000  # check data beyond this is sampled (evenly) for the accuracy comparison
MAX_DROP = 0.01  # int8 may lose at most one point of accuracy


def export_onnx(
    model_or_path: Any,
    out: str | Path,
    *,
    check: Any = None,
    calibrate: Any = None,
    quantize: str | None = None,
    force: bool = False,
    tolerance: par.Tolerance | None = None,
    max_accuracy_drop: float = MAX_DROP,
    exporter: str = "auto",
    opset: int | None = None,
    batch_sizes: tuple[int, ...] = par.BATCH_SIZES,
    text_column: str | None = None,
    label_columns: list[str] | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Export a model (a `TransferModel` or a saved bundle folder) to `out` as `model.onnx` + `export.json`
    (+ `tokenizer.json` for text); returns the manifest written.

    `check`: labelled held-out data (a Dataset or a source) to compare on, else generated inputs of the modality;
    `quantize`: None, "dynamic" or "static" (int8; calibrated on `calibrate`, else `check`); `force`: write an int8
    model even when it loses more than `max_accuracy_drop` accuracy (or when there are no labels to measure it).
    An ExportError, with nothing written, when the export fails, fails the parity gate or the int8 accuracy gate."""
    from headstart.export.convert import OPSET, export_graph, save, set_metadata
    from headstart.export.convert import check as check_onnx
    from headstart.export.fusion import eager_attention, fusable, fuse
    from headstart.export.graph import (
        DYNAMIC,
        INPUTS,
        build_graph,
        collate,
        output_names,
        sample_items,
        text_settings,
        tokenizer_json,
    )
    from headstart.model import TransferModel, load_model
    from headstart.paths import atomic_dir

    say = log or (lambda message: None)
    tolerance = tolerance or par.Tolerance()
    out = Path(out)
    if quantize is not None and quantize not in ("dynamic", "static"):
        raise ExportError(f"--quantize takes dynamic or static, not {quantize!r}")
    if out.exists() and not (out.is_dir() and (not any(out.iterdir()) or (out / EXPORT_MANIFEST).is_file())):
        raise ExportError(f"{out} exists and is not an export folder; choose another --out")
    source = None
    if isinstance(model_or_path, TransferModel):
        model = model_or_path
    else:
        source = Path(model_or_path)
        model = load_model(source)
    if source is not None and out.resolve() == source.resolve():
        raise ExportError(f"{out} is the model folder itself; choose another --out")
    modality = model.modality
    graph = build_graph(model)
    backbone = model.backbone

    check_ds = _dataset(check, modality, text_column, label_columns) if check is not None else None
    items = _sample(check_ds.items, MAX_CHECK_ITEMS) if check_ds is not None else None
    labels = _labels(check_ds, model.tasks[0]) if check_ds is not None else None
    if items is None:
        items = sample_items(backbone, modality, par.PARITY_ITEMS)
    say(f"preparing {len(items)} {'check' if check_ds is not None else 'generated'} {modality} items")
    prepared = [backbone.prepare(i) for i in items]
    parity_set = prepared[: par.PARITY_ITEMS]

    example = collate(backbone, modality, prepared[:2] if len(prepared) >= 2 else prepared * 2)
    max_length = int(backbone.text_preprocessing.max_length) if modality == "text" else None
    say("exporting to ONNX")
    started = time.perf_counter()
    fusion = fusable(backbone) if modality == "text" and exporter == "auto" else None
    with eager_attention(backbone) if fusion else nullcontext():  # the pattern ONNX Runtime's optimizer fuses
        proto, how = export_graph(graph, example, DYNAMIC[modality], output_names(model), opset=opset or OPSET,
                                  max_length=max_length, exporter="torchscript" if fusion else exporter)  # fmt: skip
    how["seconds"] = round(time.perf_counter() - started, 1)
    card = _card(model, source)
    set_metadata(proto, {f"headstart.{k}": v for k, v in card.items()})
    manifest: dict[str, Any] = {
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": MODEL_FILE,
        "modality": modality,
        "inputs": _inputs(modality, INPUTS[modality], backbone),
        "outputs": {"features": FEATURES, "probabilities": {t: probabilities_output(t) for t in model.tasks}},
        **card,
        "exporter": how,
    }
    if modality == "text":
        manifest["text"] = text_settings(backbone)
    with atomic_dir(out) as tmp:
        fp32_dir = tmp / "fp32"
        fp32_dir.mkdir()
        save(proto, fp32_dir / MODEL_FILE)
        del proto
        check_onnx(fp32_dir / MODEL_FILE)
        if fusion:
            say("fusing the transformer's attention and layer norms (ONNX Runtime's optimizer)")
            manifest["exporter"]["fusion"] = fuse(fp32_dir / MODEL_FILE, tmp / "fused" / MODEL_FILE, fusion)
        say(f"comparing ONNX Runtime with PyTorch at batch sizes {', '.join(map(str, batch_sizes))}")
        reference: dict[tuple[int, int], list[Any]] = {}  # PyTorch's outputs, computed once for every comparison
        sess, result = _fused_session(tmp, fp32_dir, manifest["exporter"], lambda s: par.compare(
            graph, s, backbone, modality, parity_set, batch_sizes=batch_sizes, tolerance=tolerance,
            reference=reference))  # fmt: skip
        if result is None:  # the plain graph: no fusion, or a fused graph that failed the gate
            sess = par.session(fp32_dir / MODEL_FILE)
            result = par.compare(graph, sess, backbone, modality, parity_set, batch_sizes=batch_sizes,
                                 tolerance=tolerance, reference=reference)  # fmt: skip
        result["inputs"] = "check data" if check_ds is not None else "generated"
        if not result["passed"]:
            raise ExportError(f"parity check failed, nothing written: {par.failure(result)} ({par.summary(result)})")
        manifest["parity"] = result
        manifest["preprocessing_parity"] = _preprocessing_parity(
            backbone, modality, items[: par.PARITY_ITEMS], manifest
        )
        fp32_out = par.outputs_over(sess, backbone, modality, prepared) if labels is not None or quantize else None
        if labels is not None and fp32_out is not None:
            manifest["check"] = {"items": len(labels), "task": model.tasks[0],
                                 "accuracy": _accuracy(fp32_out[1], labels, model.classes)}  # fmt: skip
        final = fp32_dir
        if quantize:
            calib_items = items
            if calibrate is not None:
                calib_ds = _dataset(calibrate, modality, text_column, None)
                calib_items = _sample(calib_ds.items, 256)
            calib = [backbone.prepare(i) for i in _sample(calib_items, 256)] if quantize == "static" else None
            feeds = None if calib is None else [
                {k: v.numpy() for k, v in collate(backbone, modality, calib[s : s + 16]).items()}
                for s in range(0, len(calib), 16)
            ]  # fmt: skip
            int8_dir = tmp / "int8"
            int8_dir.mkdir()
            from headstart.export.quantize import files_bytes
            from headstart.export.quantize import quantize as run_quantize

            say(f"quantising to int8 ({quantize})")
            external = (fp32_dir / WEIGHTS_FILE).is_file()
            fused_graph = bool(manifest["exporter"].get("fusion", {}).get("fused"))
            info = run_quantize(quantize, fp32_dir / MODEL_FILE, int8_dir / MODEL_FILE, calibration=feeds,
                                external=external, modality=modality, fused=fused_graph)  # fmt: skip
            _restamp(int8_dir / MODEL_FILE, card, external)
            check_onnx(int8_dir / MODEL_FILE)
            sess8 = par.session(int8_dir / MODEL_FILE)
            info["parity_vs_pytorch"] = par.compare(graph, sess8, backbone, modality, parity_set,
                                                    batch_sizes=batch_sizes, reference=reference)  # fmt: skip
            int8_out = par.outputs_over(sess8, backbone, modality, prepared)
            names = [MODEL_FILE, WEIGHTS_FILE]
            info["size_fp32_bytes"] = files_bytes(fp32_dir, names)
            info["size_int8_bytes"] = files_bytes(int8_dir, names)
            info["size_ratio"] = info["size_int8_bytes"] / max(1, info["size_fp32_bytes"])
            info["top1_agreement_vs_fp32"] = float(np.mean(int8_out[1].argmax(1) == fp32_out[1].argmax(1)))
            info["features_max_abs_diff_vs_fp32"] = float(np.abs(int8_out[0] - fp32_out[0]).max())
            if labels is not None:
                acc32, acc8 = (
                    _accuracy(fp32_out[1], labels, model.classes),
                    _accuracy(int8_out[1], labels, model.classes),
                )
                info.update(accuracy_fp32=acc32, accuracy_int8=acc8, accuracy_change=acc8 - acc32, items=len(labels))
                if acc32 - acc8 > max_accuracy_drop and not force:
                    raise ExportError(
                        f"int8 ({quantize}) refused, nothing written: accuracy {acc8:.4f} against {acc32:.4f} in fp32 "
                        f"on {len(labels)} check items ({100 * (acc8 - acc32):+.1f} points; at most "
                        f"{100 * max_accuracy_drop:g} may be lost); --force writes it anyway"
                    )
            elif not force:
                raise ExportError(
                    "int8 needs labelled --check data to measure the accuracy it loses (the first task's labels); "
                    "--force writes it without that check"
                )
            info["forced"] = bool(force)
            manifest["quantization"] = info
            final = int8_dir
        for name in (MODEL_FILE, WEIGHTS_FILE):
            if (final / name).is_file():
                (final / name).replace(tmp / name)
        for folder in (fp32_dir, tmp / "int8"):
            shutil.rmtree(folder, ignore_errors=True)
        if modality == "text":
            (tmp / TOKENIZER_FILE).write_text(tokenizer_json(backbone) or "")
        manifest["files"] = sorted([*(p.name for p in tmp.iterdir()), EXPORT_MANIFEST])
        (tmp / EXPORT_MANIFEST).write_text(json.dumps(manifest, indent=2, default=_jsonable))
    return manifest


def _fused_session(tmp: Path, fp32_dir: Path, how: dict[str, Any], compare: Any) -> tuple[Any, Any]:
    """(session, parity result) of the fused graph in `tmp/fused` when there is one and it passes the parity gate,
    moved into `fp32_dir` in place of the plain graph; (None, None) otherwise, with the reason in `how["fusion"]`."""
    fused_dir = tmp / "fused"
    try:
        if not how.get("fusion", {}).get("fused"):
            return None, None
        sess = par.session(fused_dir / MODEL_FILE)
        result = compare(sess)
        if not result["passed"]:
            how["fusion"] = {"fused": False, "reason": f"parity: {par.failure(result)}"}
            return None, None
        for name in (MODEL_FILE, WEIGHTS_FILE):
            (fp32_dir / name).unlink(missing_ok=True)
            if (fused_dir / name).is_file():
                (fused_dir / name).replace(fp32_dir / name)
        return sess, result
    finally:
        shutil.rmtree(fused_dir, ignore_errors=True)


def _dataset(source: Any, modality: str, text_column: str | None, label_columns: list[str] | None) -> Any:
    from headstart.data import Dataset, load_data

    if isinstance(source, Dataset):
        return source
    return load_data(source, modality=modality, text_column=text_column, label_columns=label_columns)


def _sample(items: list[Any], limit: int) -> list[Any]:
    if len(items) <= limit:
        return list(items)
    keep = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in keep]


def _labels(ds: Any, task: str) -> list[str] | None:
    targets = ds.targets.get(task) if task in ds.targets else (next(iter(ds.targets.values())) if ds.targets else None)
    if targets is None:
        return None
    return [str(t) for t in _sample(list(targets), MAX_CHECK_ITEMS)]


def _accuracy(proba: np.ndarray, labels: list[str], classes: list[str]) -> float:
    predicted = [classes[i] for i in proba.argmax(1)]
    return float(np.mean([p == y for p, y in zip(predicted, labels, strict=True)]))


def _inputs(modality: str, names: tuple[str, ...], backbone: Any) -> list[dict[str, Any]]:
    if modality == "image":
        size = backbone.image_preprocessing.size
        return [{"name": "images", "dtype": "uint8", "shape": ["batch", 3, size, size], "layout": "NCHW"}]
    if modality == "text":
        return [{"name": n, "dtype": "int64", "shape": ["batch", "sequence"]} for n in names]
    n = backbone.audio_preprocessing.num_samples
    return [{"name": "waveforms", "dtype": "float32", "shape": ["batch", n], "range": "[-1, 1]"}]


def _card(model: Any, source: Path | None) -> dict[str, Any]:
    """What the ONNX metadata and export.json both say about the model."""
    backbone = {k: v for k, v in model.backbone_info.items() if k not in ("preprocessing",)}
    backbone["spec"] = model.backbone_info.get("architecture", model.backbone_spec)
    backbone["tuned"] = bool(model.tuned_backbone)
    return {
        "backbone": backbone,
        "preprocessing": model.backbone.preprocessing,
        "tasks": {t: {"classes": [str(c) for c in h.classes_], "head": h.kind} for t, h in model.heads.items()},
        "metrics": model.metrics,
        "source": source_info(source) if source else {"path": None, "bundle_hash": None},
    }


def source_info(folder: Path) -> dict[str, Any]:
    """Which bundle was exported: its path and hash. The hash is the manifest's SHA-256 when the manifest records
    the SHA-256 of every weight file (bundle format 2); else a SHA-256 over the manifest and weights together."""
    from headstart.bundle import MANIFEST, file_hash, read_manifest

    files = read_manifest(folder).get("files")
    if isinstance(files, dict) and files:
        return {"path": str(folder), "bundle_hash": file_hash(folder / MANIFEST), "hash_of": MANIFEST, "files": files}
    return {"path": str(folder), "bundle_hash": bundle_hash(folder), "hash_of": "manifest and weight files"}


def bundle_hash(folder: Path) -> str:
    """sha256 over the bundle's own files (manifest and weights), name by name."""
    from headstart.bundle import OWN_FILES

    h = hashlib.sha256()
    for name in sorted(OWN_FILES):
        path = folder / name
        if path.is_file():
            h.update(name.encode() + b"\0")
            with path.open("rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    h.update(chunk)
    return "sha256:" + h.hexdigest()


def _restamp(path: Path, card: dict[str, Any], external: bool) -> None:
    """Put the metadata back on a quantised model (the quantiser does not always carry it)."""
    import onnx

    from headstart.export.convert import save, set_metadata

    proto = onnx.load(str(path))
    set_metadata(proto, {f"headstart.{k}": v for k, v in card.items()})
    if external and (path.parent / WEIGHTS_FILE).is_file():
        (path.parent / WEIGHTS_FILE).unlink()
    save(proto, path, external=external or None)


def _preprocessing_parity(backbone: Any, modality: str, items: list[Any], manifest: dict[str, Any]) -> dict[str, Any]:
    """How closely the runtime's own preprocessing (Pillow / tokenizers / numpy) reproduces the PyTorch path's graph
    inputs on these items: largest grey-level / sample difference, or the share of identical token sequences."""
    from headstart.runtime import inputs as prep

    try:
        if modality == "image":
            ours = [prep.prepare_image(i, manifest["preprocessing"]).astype(np.int16) for i in items]
            theirs = [np.asarray(backbone.prepare(i)).astype(np.int16) for i in items]
            diffs = [np.abs(a - b) for a, b in zip(ours, theirs, strict=True)]
            return {"items": len(items), "max_abs_diff_grey_levels": int(max(d.max() for d in diffs)),
                    "mean_abs_diff_grey_levels": float(np.mean([d.mean() for d in diffs]))}  # fmt: skip
        if modality == "audio":
            ours = [prep.prepare_audio(i, manifest["preprocessing"]) for i in items]
            theirs = [np.asarray(backbone.prepare(i)) for i in items]
            diff = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs, strict=True))
            return {"items": len(items), "max_abs_diff_samples": diff}
        import tempfile

        from headstart.export.graph import tokenizer_json

        with tempfile.TemporaryDirectory() as folder:
            file = Path(folder) / TOKENIZER_FILE
            file.write_text(tokenizer_json(backbone) or "")
            encoder = prep.TextEncoder(file, manifest["text"])
            same = 0
            for item in items:
                ours = encoder([prep.text_of(item)])["input_ids"][0].tolist()
                theirs = backbone.collate([backbone.prepare(item)])["input_ids"][0].tolist()
                same += ours == theirs
        return {"items": len(items), "identical_token_ids": same / max(1, len(items))}
    except Exception as exc:  # a figure for the manifest, never a reason to fail the export
        return {"error": f"{type(exc).__name__}: {str(exc)[:200]}"}


def _jsonable(value: Any) -> Any:
    from headstart.bundle import jsonable

    return jsonable(value)
