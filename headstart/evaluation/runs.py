"""What a fitted model leaves behind: its test metrics, its report, and the run folder (bundle + report + plots).

Shared by `headstart.fit` and fine-tuning, so both write the same run folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headstart.data.dataset import Dataset

if TYPE_CHECKING:
    from headstart.model import TransferModel


def save_run(model: TransferModel, out: str | Path, metrics: dict[str, Any]) -> Path:
    """The bundle plus its report and plots, in one folder."""
    out = Path(out)
    model.save(out)
    write_outputs(out, model.report, metrics)
    return out


def write_outputs(out: Path, report: dict[str, Any], metrics: dict[str, Any]) -> None:
    from headstart.evaluation import write_report
    from headstart.evaluation.plots import confusion_png

    out.mkdir(parents=True, exist_ok=True)
    for task, m in metrics.items():
        name = "confusion.png" if len(metrics) == 1 else f"confusion-{task}.png"
        acc = f"accuracy {m['accuracy']:.3f}, n={m['n']}"
        confusion_png(m["confusion"], m["labels"], out / name, f"{report['title']}\n{task}: {acc}")
        report["tasks"][task]["confusion_png"] = name
    write_report(out, report)


def evaluate_model(model: TransferModel, ds: Dataset, x: np.ndarray) -> dict[str, Any]:
    from headstart.evaluation import classification_metrics

    out = {}
    for task, head in model.heads.items():
        labels = [str(c) for c in head.classes_]
        extra = sorted(set(ds.targets[task]) - set(labels))
        out[task] = classification_metrics(ds.targets[task], model.predict(ds, task=task, features=x), labels + extra)
    return out


def summary(m: dict[str, Any]) -> dict[str, Any]:
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": m["n"]}


def build_report(
    model: TransferModel, ds: Dataset, head: str, metrics: dict, timing: dict, *, title: str
) -> dict[str, Any]:
    info = model.data_info
    report = {
        "title": title,
        "backbone": model.backbone_spec,
        "head": head or ", ".join(sorted({h.kind for h in model.heads.values()})),
        "data": ds.source,
        "fingerprint": ds.fingerprint(),
        "tasks": metrics,
        "timing_s": timing,
        "skipped": [str(i) for i in ds.issues],
    }
    for key in ("seed", "labels_per_class", "n_train", "n_test"):
        if key in info and not title.startswith("evaluate"):
            report[key] = info[key]
    return report
