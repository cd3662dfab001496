"""Run reports: the same facts as JSON (for machines) and Markdown (for people)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from headstart.paths import atomic_file


def write_report(folder: Path, report: dict[str, Any], *, name: str = "report") -> tuple[Path, Path]:
    folder = Path(folder)
    json_path, md_path = folder / f"{name}.json", folder / f"{name}.md"
    with atomic_file(json_path) as f:
        json.dump(report, f, indent=2, default=str)
    with atomic_file(md_path) as f:
        f.write(to_markdown(report))
    return json_path, md_path


def to_markdown(report: dict[str, Any]) -> str:
    lines = [f"# {report.get('title', 'headstart report')}", ""]
    for key in ("backbone", "head", "data", "seed", "labels_per_class", "n_train", "n_test"):
        if key in report:
            lines.append(f"- **{key}**: {report[key]}")
    for key, words in (("trained_on", "the saved model learned from"), ("accuracy_from", "accuracy measured on")):
        if key in report:
            lines.append(f"- **{words}**: {report[key]}")
    if "timing_s" in report:
        lines.append("- **time (s)**: " + ", ".join(f"{k} {v:.2f}" for k, v in report["timing_s"].items()))
    for task, m in report.get("tasks", {}).items():
        lines += [
            "",
            f"## Task `{task}`",
            "",
            f"accuracy **{m['accuracy']:.4f}**, macro-F1 **{m['macro_f1']:.4f}**, {m['n']} scored items",
            "",
        ]
        if "baseline" in m:
            b = m["baseline"]
            lines += [
                f"Baseline ({b['name']}, same split): accuracy {b['accuracy']:.4f}, macro-F1 {b['macro_f1']:.4f}",
                "",
            ]
        lines += ["| class | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        for label, c in m["per_class"].items():
            lines.append(f"| {label} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |")
        if m.get("confusion_png"):
            lines += ["", f"![confusion matrix]({m['confusion_png']})"]
    issues = report.get("skipped", [])
    lines += ["", f"## Skipped items: {len(issues)}", ""]
    lines += [f"- {issue}" for issue in issues[:200]]
    if len(issues) > 200:
        lines.append(f"- ... and {len(issues) - 200} more (see report.json)")
    return "\n".join(lines) + "\n"
