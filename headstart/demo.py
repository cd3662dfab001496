"""`headstart quickstart`: the whole recipe on an embedded default, pretrained features beside an honest baseline.

text:  samples:bbc-news (2,225 BBC articles, 5 classes) with st:all-MiniLM-L6-v2, baseline TF-IDF + logistic regression
image: samples:digits (1,797 8x8 digits, 10 classes) with headstart:efficientnet-lite0, baseline raw pixels + LR
audio: samples:spoken-digits (320 espeak-ng clips, 10 classes, test voices held out) with headstart:speech-embedding,
       baseline log-mel + LR
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from headstart import api

DEFAULTS = {
    "text": ("samples:bbc-news", "st:all-MiniLM-L6-v2"),
    "image": ("samples:digits", "headstart:efficientnet-lite0"),
    "audio": ("samples:spoken-digits", "headstart:speech-embedding"),
}


def parse_budgets(budgets: str | list[Any]) -> list[int | None]:
    from headstart.errors import HeadstartError

    parts = budgets.split(",") if isinstance(budgets, str) else list(budgets)
    out: list[int | None] = []
    for part in parts:
        text = str(part).strip().lower()
        if text in ("all", "none", ""):
            out.append(None)
        elif text.isdigit() and int(text) > 0:
            out.append(int(text))
        else:
            raise HeadstartError(f"--budgets: {part!r} is not a positive number of labels per class or 'all'")
    return out


def quickstart(
    modality: str = "text",
    *,
    out: str | Path = "runs/quickstart",
    budgets: str | list[Any] = "4,16,all",
    seed: int = 0,
    data: str | None = None,
    backbone: str | None = None,
    progress: bool = True,
    console: Any = None,
) -> dict[str, Any]:
    """Fit at each label budget on the same split and seed; save the last model, a report and a budget curve PNG."""
    from headstart.errors import HeadstartError
    from headstart.evaluation import write_report
    from headstart.evaluation.plots import budget_curve_png

    if modality not in DEFAULTS:
        raise HeadstartError(f"--modality must be one of {', '.join(DEFAULTS)}, not {modality!r}")
    data = data or DEFAULTS[modality][0]
    backbone = backbone or DEFAULTS[modality][1]
    out = Path(out)
    say = console.print if console is not None else (lambda *a, **k: None)
    say(f"[bold]headstart quickstart[/bold] ({modality}): {data} with {backbone}, seed {seed}")

    t_start = time.perf_counter()
    ds = api.load_dataset(data)
    rows, curve = [], []
    budget_list = parse_budgets(budgets)
    if not budget_list:
        raise HeadstartError("--budgets: give at least one label budget, e.g. 4,16,all")
    model = None
    for budget in budget_list:
        say(
            f"fitting with {budget or 'all'} labels per class: the probe, then auto (candidates compared by "
            "cross-validation) ..."
        )
        model_out = out / "model" if budget == budget_list[-1] else None
        model, row, points = _one_budget(ds, budget, backbone=backbone, seed=seed, progress=progress, out=model_out)
        rows.append(row)
        curve += points
    assert model is not None
    examples = _unseen_examples(model, ds, seed)
    result = {
        "title": f"quickstart ({modality}): {data} with {backbone}",
        "modality": modality,
        "data": data,
        "backbone": backbone,
        "baseline": curve[-1]["method"],
        "seed": seed,
        "split": "75/25 (whole groups held out for test)" if ds.groups is not None else "stratified 75/25",
        "budgets": rows,
        "examples": examples,
        "model": str(out / "model"),
        "wall_s": round(time.perf_counter() - t_start, 1),
    }
    out.mkdir(parents=True, exist_ok=True)
    budget_curve_png(curve, out / "budgets.png", result["title"])
    write_report(out, result, name="quickstart")
    (out / "quickstart.md").write_text(_markdown(result))
    if console is not None:
        _print(console, result)
    return result


def _one_budget(
    ds: Any, budget: int | None, *, backbone: str, seed: int, progress: bool, out: Path | None
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """The probe and `auto` at one label budget: the auto model, its table row, and its points on the curve."""
    label = "all" if budget is None else str(budget)
    # refit=False: the saved model is the one scored, so the "unseen" examples shown really are unseen by it
    common = {"backbone": backbone, "labels_per_class": budget, "seed": seed, "progress": progress, "refit": False}
    probe = api.fit(ds, strategy="probe", **common)
    auto = api.fit(ds, strategy="auto", baseline=False, **common, out=out)
    m, a = probe.report["tasks"]["label"], auto.report["tasks"]["label"]
    row = {
        "labels_per_class": label,
        "n_train": probe.report["n_train"],
        "n_test": probe.report["n_test"],
        "pretrained_accuracy": round(m["accuracy"], 4),
        "pretrained_macro_f1": round(m["macro_f1"], 4),
        "baseline_accuracy": round(m["baseline"]["accuracy"], 4),
        "baseline_macro_f1": round(m["baseline"]["macro_f1"], 4),
        "auto_accuracy": round(a["accuracy"], 4),
        "auto_macro_f1": round(a["macro_f1"], 4),
        "auto_chose": auto.report["chosen"],
        "extract_s": round(probe.report["timing_s"]["extract"], 2),
        "fit_s": round(probe.report["timing_s"]["fit"], 3),
        "auto_s": round(auto.report["timing_s"]["auto"], 1),
    }
    points = [
        {"budget": label, "method": f"{backbone} + tuned linear head (probe)", "accuracy": m["accuracy"]},
        {"budget": label, "method": "auto (best recipe by cross-validation)", "accuracy": a["accuracy"]},
        {"budget": label, "method": m["baseline"]["name"], "accuracy": m["baseline"]["accuracy"]},
    ]
    return auto, row, points


def _unseen_examples(model: Any, ds: Any, seed: int, n: int = 5) -> list[dict[str, Any]]:
    """A few test-split items (never seen in training) with their true and predicted labels."""
    from headstart.data import split

    _, test = split(ds, test_size=model.data_info["test_size"], seed=seed)
    picks = test.subset(list(range(0, len(test), max(1, len(test) // n)))[:n])
    proba = model.predict_proba(picks)
    classes = model.classes
    rows = []
    for i, p in enumerate(proba):
        item = picks.items[i]
        shown = " ".join(item.split())[:90] + "..." if isinstance(item, str) else picks.where[i]
        best = int(p.argmax())
        rows.append(
            {"input": shown, "true": picks.labels[i], "predicted": classes[best], "probability": float(p[best])}
        )
    return rows


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# {result['title']}",
        "",
        f"Seed {result['seed']}; the same {result['split']} split for every budget; baseline: {result['baseline']}.",
        "",
        "| labels/class | n train | n test | probe acc. | auto acc. | baseline acc. | auto chose |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["budgets"]:
        lines.append(
            f"| {r['labels_per_class']} | {r['n_train']} | {r['n_test']} | {r['pretrained_accuracy']:.4f} | "
            f"{r['auto_accuracy']:.4f} | {r['baseline_accuracy']:.4f} | {r['auto_chose']} |"
        )
    lines += ["", "![accuracy by label budget](budgets.png)", "", "## Predictions on unseen examples", ""]
    for e in result["examples"]:
        lines.append(f"- {e['input']} -> **{e['predicted']}** ({e['probability']:.2f}); true: {e['true']}")
    return "\n".join(lines) + "\n"


def _print(console: Any, result: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(title=result["title"])
    for col in ("labels per class", "n train", "probe acc.", "auto acc.", "baseline acc.", "auto chose"):
        justify = "left" if col == "auto chose" else "right"
        table.add_column(col, justify=justify, min_width=8 if col == "labels per class" else None)
    for r in result["budgets"]:
        table.add_row(
            r["labels_per_class"],
            str(r["n_train"]),
            f"{r['pretrained_accuracy']:.4f}",
            f"{r['auto_accuracy']:.4f}",
            f"{r['baseline_accuracy']:.4f}",
            r["auto_chose"],
        )
    console.print(table)
    console.print(
        f"the same test split for every column (seed {result['seed']}); probe: a linear head tuned by cross-validation "
        f"on the frozen features (--strategy probe); auto (what `headstart fit` does by default): the baseline, heads "
        f"and joined features compared by cross-validation on the training labels, the best refit on them; baseline: "
        f"{result['baseline']}"
    )
    ex = Table(title="predictions on unseen test items")
    for col in ("input", "predicted", "p", "true"):
        ex.add_column(col, overflow="ellipsis", max_width=70 if col == "input" else None)
    for e in result["examples"]:
        ex.add_row(e["input"], e["predicted"], f"{e['probability']:.2f}", e["true"])
    console.print(ex)
    console.print(
        f"model saved to [bold]{result['model']}[/bold]; report and budgets.png in its parent folder "
        f"({result['wall_s']} s)"
    )
