"""What a finished pretraining run leaves: the backbone (manifest + safetensors, loadable as `local:DIR`) and its
report (settings, data, time, throughput, per-epoch history as CSV, a loss-curve PNG, Markdown)."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

from headstart.data.dataset import Dataset
from headstart.pretrain.common import Pretrained

REPORT_MD = "report.md"
HISTORY_CSV = "history.csv"
CURVE_PNG = "loss-curve.png"


def save_run(out: Path, result: Pretrained, config: dict[str, Any], outcome: Any, ds: Dataset) -> Path:
    """Write the run folder atomically, carrying over what training left in it (checkpoint/, figures/)."""
    from safetensors.torch import save_model

    from headstart.backbones.local_source import backbone_section
    from headstart.bundle import BACKBONE_FORMAT, BACKBONE_WEIGHTS, MANIFEST, file_hash, library_versions
    from headstart.paths import atomic_dir

    history = result.history
    trained = sum(r.get("samples", 0) for r in history)
    train_seconds = sum(r.get("seconds", 0.0) for r in history)
    section = {
        "method": outcome.method,
        "settings": config["settings"],
        "start": config["backbone"],
        "architecture": result.architecture,
        "data": {**config["data"], "modality": ds.modality},
        "history": history,
        "seconds": round(outcome.seconds, 2),
        "train_seconds": round(train_seconds, 2),
        "samples_per_s": round(trained / max(train_seconds, 1e-3), 1) if history else None,
        "resumed_at": outcome.resumed_at,
        "notes": outcome.notes,
    }
    manifest = {
        "format": BACKBONE_FORMAT,
        "format_version": 1,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "backbone": backbone_section(result.backbone, architecture=result.architecture, weights_file=BACKBONE_WEIGHTS),
        "pretrain": section,
        "versions": library_versions(),
    }
    keep = {p.name: p for p in out.iterdir()} if out.is_dir() else {}
    with atomic_dir(out) as tmp:
        for name, src in keep.items():
            if src.is_dir() and not any(src.iterdir()):
                continue
            if src.is_dir():
                shutil.copytree(src, tmp / name)
            elif name not in (MANIFEST, BACKBONE_WEIGHTS):
                shutil.copy2(src, tmp / name)
        save_model(result.backbone.module.cpu(), str(tmp / BACKBONE_WEIGHTS))
        manifest["files"] = {BACKBONE_WEIGHTS: file_hash(tmp / BACKBONE_WEIGHTS)}  # checked when loaded as local:
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str))
        _history_csv(history, tmp / HISTORY_CSV)
        loss_curve_png(history, tmp / CURVE_PNG, f"{outcome.method} pretraining on {ds.source}")
        (tmp / REPORT_MD).write_text(report_markdown(section, manifest["backbone"], result))
    return out


def _history_csv(history: list[dict[str, Any]], path: Path) -> None:
    import csv

    columns = list(dict.fromkeys(k for row in history for k in row))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(history)


def loss_curve_png(history: list[dict[str, Any]], path: Path, title: str) -> Path:
    """Every logged loss per epoch (the method's `loss` bold, others such as a GAN's two losses beside it)."""
    from headstart.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4))
    epochs = [r["epoch"] for r in history]
    keys = [k for k in dict.fromkeys(k for r in history for k in r) if k == "loss" or k.endswith("_loss")]
    for key in keys:
        ax.plot(epochs, [r.get(key) for r in history], marker="o", lw=2.2 if key == "loss" else 1.2, label=key)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("training loss")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def report_markdown(section: dict[str, Any], backbone: dict[str, Any], result: Pretrained) -> str:
    s = section["settings"]
    lines = [
        f"# Pretraining: {section['method']} on {section['data']['source']}",
        "",
        f"- architecture: `{section['architecture']}` ({backbone['embed_dim']}-d embeddings)",
        f"- started from: `{section['start'] or 'random init (the method default)'}`",
        f"- data: {section['data']['n_items']} unlabelled {section['data']['modality']} items "
        f"(fingerprint {section['data']['fingerprint']})",
        f"- settings: epochs {s['epochs']}, batch size {s['batch_size']}, lr {s['lr']}, seed {s['seed']}",
        f"- method options: {', '.join(f'{k}={v}' for k, v in s['options'].items()) or 'none'}",
        f"- time: {section['seconds']:.1f} s in all, {section['train_seconds']:.1f} s training; "
        f"throughput {section['samples_per_s']} samples/s",
    ]
    if section["resumed_at"] is not None:
        lines.append(f"- resumed after epoch {section['resumed_at']}")
    lines += [f"- note: {n}" for n in section["notes"]]
    lines += ["", f"![loss curve]({CURVE_PNG})", ""]
    for fig in result.figures:
        lines.append(f"![{fig.name}]({fig.parent.name}/{fig.name})")
    keys = [k for k in dict.fromkeys(k for r in section["history"] for k in r) if k != "epoch"]
    lines += ["", "| epoch | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for r in section["history"]:
        cells = [_cell(r.get(k)) for k in keys]
        lines.append(f"| {r['epoch']} | " + " | ".join(cells) + " |")
    lines += ["", f"Use it: `headstart fit DATA --backbone local:{'DIR'}` (DIR = this folder)", ""]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
