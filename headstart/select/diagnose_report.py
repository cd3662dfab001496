"""What `diagnose` writes: report.json, report.md and an embedding map (PCA 2-D), plus the rows of its summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from headstart.data import Dataset
from headstart.paths import atomic_file

if TYPE_CHECKING:
    from headstart.select.diagnosis import Diagnosis

MAP_NAME = "embedding-map.png"
LISTED = 50  # items listed per finding in report.md (report.json has them all)


def summary_rows(d: Diagnosis) -> list[tuple[str, str, str]]:
    """(check, finding, detail) for each check that ran."""
    rows = []
    n = d.data["n_items"]
    if d.balance is not None:
        b = d.balance
        status = "imbalanced" if b["ratio"] >= 3 else "ok"
        sizes = f"{b['classes']} classes of {b['smallest']}-{b['largest']} items (largest/smallest {b['ratio']:.1f})"
        rows.append(("class balance", status, sizes))
    conflicting = sum(g["conflicting"] for g in d.exact_duplicates)
    copies = sum(len(g["where"]) - 1 for g in d.exact_duplicates)
    detail = f"{len(d.exact_duplicates)} groups, {copies} extra copies"
    detail += f", {conflicting} groups with conflicting labels" if conflicting else ""
    rows.append(("exact duplicates", str(copies), detail))
    near = f"pairs of distinct items with cosine similarity >= {d.data['near_threshold']} (centred embeddings)"
    rows.append(("near-duplicates", str(len(d.near_duplicates)), near))
    if d.leakage is not None:
        test_items = len({p["test"] for p in d.leakage})
        exact = sum(p["exact"] for p in d.leakage)
        kinds = f"{exact} exact, {len(d.leakage) - exact} near"
        detail = f"test items with a duplicate in the train part of the default split ({kinds} pairs)"
        rows.append(("train/test leakage", str(test_items), detail))
    if d.label_issues is not None:
        share = len(d.label_issues) / n
        rows.append(("suspect labels", str(len(d.label_issues)), f"{share:.1%} of items (confident learning)"))
    rows.append(("outliers", str(len(d.outliers)), f"kNN-distance robust z > {d.data['outlier_z']}"))
    if d.shift is not None:
        s = d.shift
        c, m = s["classifier"], s["mmd"]
        detail = f"AUC {c['statistic']:.3f} (p={c['p_value']:.3g}), MMD² {m['statistic']:.4g} (p={m['p_value']:.3g})"
        rows.append(("domain shift", s["level"], detail))
    return rows


def write_diagnosis(
    out: Path, d: Diagnosis, features: np.ndarray, data: Dataset, target_features: np.ndarray | None
) -> None:
    out.mkdir(parents=True, exist_ok=True)
    embedding_map(out / MAP_NAME, d, features, data, target_features)
    d.files = {"json": str(out / "report.json"), "markdown": str(out / "report.md"), "map": str(out / MAP_NAME)}
    with atomic_file(out / "report.json") as f:
        json.dump(d.to_dict(), f, indent=2, default=str)
    with atomic_file(out / "report.md") as f:
        f.write(markdown(d))


def markdown(d: Diagnosis) -> str:
    info = d.data
    lines = [
        f"# Diagnosis of {info['source']}",
        "",
        f"- **items**: {info['n_items']}; **backbone**: `{info['backbone']}` ({info['embed_dim']}-d embeddings)",
        f"- **default split**: test_size {info['test_size']}, seed {info['seed']}",
        "",
        "| check | finding | detail |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in summary_rows(d)],
        "",
    ]
    if d.shift is not None:
        lines += ["## Domain shift", "", f"Target: {d.shift['target']} ({d.shift['n_target']} items).", ""]
        lines += [d.shift["verdict"], ""]
    lines += [f"![embedding map]({MAP_NAME})", ""]
    if d.balance is not None:
        lines += ["## Class balance", "", "| class | items |", "|---|---|"]
        lines += [f"| {c} | {k} |" for c, k in d.balance["counts"].items()]
        lines.append("")
    sections = [
        ("Likely mislabelled items", d.label_issues, ("where", "given", "suggested", "p_given", "p_suggested")),
        ("Train/test leakage", d.leakage, ("train", "test", "similarity", "exact")),
        ("Exact duplicates", d.exact_duplicates, ("where", "labels", "conflicting")),
        ("Near-duplicates", d.near_duplicates, ("a", "b", "similarity", "labels")),
        ("Outliers", d.outliers, ("where", "label", "knn_z", "centroid_z")),
    ]
    for title, rows, columns in sections:
        if rows:
            lines += _table(title, rows, columns)
    notes = d.notes + [f"skipped while loading: {s}" for s in info.get("skipped", [])[:LISTED]]
    if notes:
        lines += ["## Notes", "", *[f"- {n}" for n in notes], ""]
    return "\n".join(lines)


def _table(title: str, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> list[str]:
    more = f" (first {LISTED} of {len(rows)}; all in report.json)" if len(rows) > LISTED else ""
    lines = [f"## {title}: {len(rows)}{more}", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows[:LISTED]:
        lines.append("| " + " | ".join(_cell(row[c]) for c in columns) + " |")
    return [*lines, ""]


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    return str(value).replace("|", "\\|")


def embedding_map(
    path: Path, d: Diagnosis, features: np.ndarray, data: Dataset, target_features: np.ndarray | None
) -> Path:
    """PCA 2-D of the embeddings: coloured by class (suspect labels and outliers marked) and, with a target, by
    domain. The PCA is fitted on both sets together, so the two panels share their axes."""
    from headstart.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    x = np.asarray(features, dtype=np.float64)
    pooled = x if target_features is None else np.vstack([x, np.asarray(target_features, dtype=np.float64)])
    xy = _pca_2d(pooled)
    src = xy[: len(x)]
    panels = 1 if target_features is None else 2
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 5.5), squeeze=False)
    ax = axes[0][0]
    if data.labelled:
        labels = np.asarray(data.targets[d.data["task"]])
        classes = sorted(set(labels.tolist()))
        cmap = plt.get_cmap("tab10" if len(classes) <= 10 else "tab20" if len(classes) <= 20 else "viridis")
        for k, c in enumerate(classes):
            m = labels == c
            colour = cmap(k / max(len(classes) - 1, 1)) if len(classes) > 20 else cmap(k)
            ax.scatter(src[m, 0], src[m, 1], s=8, color=colour, label=str(c), alpha=0.7, linewidths=0)
    else:
        ax.scatter(src[:, 0], src[:, 1], s=8, alpha=0.7, linewidths=0)
    index = {w: i for i, w in enumerate(data.where)}
    for rows, marker, colour, name in (
        (d.label_issues or [], "x", "black", "suspect label"),
        (d.outliers, "o", "red", "outlier"),
    ):
        pts = np.array([src[index[r["where"]]] for r in rows if r["where"] in index]).reshape(-1, 2)
        if len(pts):
            style = {"facecolors": "none", "edgecolors": colour} if marker == "o" else {"color": colour}
            ax.scatter(pts[:, 0], pts[:, 1], s=30, marker=marker, linewidths=1, label=name, **style)
    if data.labelled and len(classes) <= 20:
        ax.legend(fontsize=7, markerscale=2, loc="best", ncol=2 if len(classes) > 10 else 1)
    ax.set_title(f"{d.data['source']}: by class ({d.data['backbone']})", fontsize=9)
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    if target_features is not None:
        ax = axes[0][1]
        tgt = xy[len(x) :]
        ax.scatter(src[:, 0], src[:, 1], s=8, alpha=0.5, label=f"data ({len(src)})", linewidths=0)
        ax.scatter(tgt[:, 0], tgt[:, 1], s=8, alpha=0.5, label=f"target ({len(tgt)})", linewidths=0)
        ax.legend(fontsize=8, markerscale=2)
        level = d.shift["level"] if d.shift else "?"
        ax.set_title(f"by domain: shift {level}", fontsize=9)
        ax.set_xlabel("PC 1")
    fig.tight_layout()
    return _save(fig, path)


def _pca_2d(x: np.ndarray) -> np.ndarray:
    from sklearn.utils.extmath import randomized_svd

    centred = x - x.mean(axis=0)
    if min(centred.shape) < 2:
        return np.column_stack([centred[:, 0], np.zeros(len(x))])
    u, sv, _ = randomized_svd(centred, 2, random_state=0)
    return u * sv
