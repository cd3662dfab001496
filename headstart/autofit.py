"""`fit(..., strategy="auto")`: candidate recipes compared by cross-validation on the training part, the best
refit on every label and saved, with a leaderboard (report, table, PNG).

Candidates, cheapest first: the simple baseline itself (as a model: hand-made features + a logistic regression),
a tuned linear head (and, from MLP_FROM training items, an MLP head) on each backbone's cached features, each
backbone's features joined with the baseline's (images and audio: pixels or log-mel; text: TF-IDF rows, the TF-IDF
refitted in every fold), and, when `time_budget` allows, the costly ones:
SetFit for text backbones, `finetune` (the default fine-tuning, which beat `gradual` on digits: 0.973 against
0.947, benchmarks/finetune_recipe.py) for image and audio backbones. With more than two backbones, LogME
on the training features drops all but the best two before anything is fitted (`headstart rank` uses the same
score). Every candidate sees the same folds; the baseline is one of them, so `auto` is not worse than it beyond the
noise of the folds. The default recipe (the first backbone's tuned linear head) stays unless another beats it
clearly (see `choose`). A head's own settings (C, scaling, width) are chosen once on the whole training part and
held fixed in the folds, not nested in each fold: five times cheaper, slightly kind to tuned heads.

The accuracy quoted for the saved model comes from the held-out split or test set when there is one (never used to
choose); with `test_size=0`, it is the winner's cross-validated score, which the choice itself makes slightly
optimistic (the report says so).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from headstart.data import Dataset
from headstart.evaluation.baselines import baseline_name
from headstart.heads.tuning import clearly_better
from headstart.model import TransferModel
from headstart.runs import CV_FOLDS, Partition

KEEP_BACKBONES = 2  # with more candidates than this, LogME keeps the best ones
REPEAT_BELOW = 200  # fewer training items than this: the folds are drawn three times
COSTLY = ("setfit", "finetune")
# an MLP head is a candidate from this many training items on: below it, it never beat the linear head in our runs
# (digits at 10 per class: 0.71 / 0.58 against 0.71 / 0.74) and its nested cross-validation was the slowest cheap step
MLP_FROM = 200


@dataclass
class Candidate:
    name: str
    kind: str  # "probe" (a head on a backbone's features) or one of COSTLY
    spec: str
    head: str = "linear"
    head_params: dict[str, Any] = field(default_factory=dict)
    fold_accuracy: list[float] = field(default_factory=list)
    seconds: float = 0.0
    note: str = ""

    @property
    def scored(self) -> bool:
        return bool(self.fold_accuracy) and not self.note.startswith(("skipped", "failed"))

    def row(self, chosen: bool) -> dict[str, Any]:
        acc = np.asarray(self.fold_accuracy) if self.scored else None
        return {
            "name": self.name,
            "spec": self.spec,
            "head": self.head,
            "cv_accuracy": None if acc is None else float(acc.mean()),
            "cv_std": None if acc is None else float(acc.std()),
            "folds": len(self.fold_accuracy),
            "seconds": round(self.seconds, 2),
            "note": self.note,
            "chosen": chosen,
        }


def baseline_spec(ds: Dataset) -> tuple[str, dict[str, Any]] | None:
    """The baseline as a backbone spec and head settings, where it can be one (images and audio)."""
    if ds.modality == "audio":
        return "features:log-mel", {"C": 0.1, "scaling": "standard"}
    if ds.modality == "image":
        shapes = {np.asarray(i).shape for i in ds.items[:200] if isinstance(i, np.ndarray)}
        if len(shapes) == 1 and len(next(iter(shapes))) == 2 and next(iter(shapes))[0] <= 32:
            side = next(iter(shapes))[0]
            return f"features:pixels?mode=L&side={side}", {"C": 0.1, "scaling": "standard"}
        return "features:pixels?side=32", {"C": 0.1, "scaling": "standard"}
    return None


def candidates(ds: Dataset, backbones: list[str], budget: float | None) -> list[Candidate]:
    from headstart.probe import JOINED_HEAD

    out: list[Candidate] = []
    base = baseline_spec(ds)
    name = baseline_name(ds.modality)
    if base is not None:
        out.append(Candidate(f"baseline: {name}", "probe", base[0], "linear", base[1]))
    else:
        out.append(Candidate(f"baseline: {name}", "baseline", ""))
    for spec in backbones:
        out.append(Candidate(f"{spec} + linear head", "probe", spec, "linear"))
        if len(ds) >= MLP_FROM:
            out.append(Candidate(f"{spec} + MLP head", "probe", spec, "mlp"))
        if base is not None:
            joined = f"{spec} + {base[0]}" if spec.startswith("concat:") else f"concat:{spec} + {base[0]}"
            out.append(Candidate(f"{spec} ⊕ baseline features + linear head", "probe", joined))
        elif ds.modality == "text":  # the baseline's TF-IDF is fitted to the texts: refitted in every fold
            out.append(Candidate(f"{spec} ⊕ TF-IDF features + linear head", "joined", spec, "linear", JOINED_HEAD))
    for spec in backbones:
        kind = "setfit" if ds.modality == "text" and spec.split(":", 1)[0] in ("st", "hf") else "finetune"
        note = "" if budget else "skipped: costly; give --time-budget to try it"
        out.append(Candidate(f"{spec} {kind}", kind, spec, note=note))
    return out


def fit_auto(
    ds: Dataset,
    part: Partition,
    *,
    backbones: list[str],
    head_params: dict[str, Any] | None = None,
    class_weight: str | None = None,
    time_budget: float | None = None,
    test_source: str | None = None,
    finetune_options: dict[str, Any] | None = None,
    seed: int = 0,
    batch_size: int = 32,
    baseline: bool = True,
    progress: bool = True,
) -> TransferModel:
    start = time.perf_counter()
    folds = fold_indices(part.train, seed)
    backbones, dropped = _shortlist(part.train, backbones, batch_size, progress)
    pool = candidates(part.train, backbones, time_budget)
    for name, logme in dropped:
        pool.append(Candidate(f"{name} (all recipes)", "dropped", name, note=f"dropped by LogME ({logme:.3f})"))
    common = {"seed": seed, "batch_size": batch_size, "progress": progress, "class_weight": class_weight}
    for cand in pool:
        if cand.note or cand.kind == "dropped":
            continue
        spent = time.perf_counter() - start
        if time_budget is not None and spent > time_budget and cand.kind in COSTLY:
            cand.note = f"skipped: the time budget ({time_budget:.0f} s) was spent"
            continue
        t0 = time.perf_counter()
        try:
            _score(cand, part.train, folds, common, time_budget, spent, finetune_options or {})
        except Exception as exc:  # a costly candidate failing (a backbone that cannot fine-tune) is a row, not a stop
            from headstart.errors import HeadstartError

            # a cheap candidate's failure is the user's (an unknown backbone, data it cannot read): said, not hidden
            if cand.kind not in COSTLY or not isinstance(exc, (HeadstartError, ValueError, RuntimeError)):
                raise
            cand.note = f"failed: {str(exc).splitlines()[0][:160]}"
        cand.seconds = time.perf_counter() - t0

    scored = [c for c in pool if c.scored]
    winner = choose(scored, default=_default_candidate(pool))
    top = max(scored, key=lambda c: float(np.mean(c.fold_accuracy)))
    if top is not winner and float(np.mean(top.fold_accuracy)) > float(np.mean(winner.fold_accuracy)):
        top.note = "best mean, not clearly better than the default recipe"
    model = _final_model(winner, ds, part, common, baseline, test_source, finetune_options or {})
    rows = [c.row(c is winner) for c in pool]
    model.report["leaderboard"] = rows
    model.report["leaderboard_on"] = (
        f"{len(part.train)} training items, {len(folds)} folds (the same for every candidate)"
    )
    model.report["strategy"] = "auto"
    model.report["chosen"] = winner.name
    model.report["title"] = f"fit (auto): {ds.source}; chose {winner.name}"
    if part.test is None:
        model.report["accuracy_from"] += (
            "; the winner was chosen on these same folds, which makes its score slightly optimistic"
        )
    model.report.setdefault("timing_s", {})["auto"] = time.perf_counter() - start
    model.report["timing_s"]["auto"] = time.perf_counter() - start
    return model


def choose(scored: list[Candidate], default: Candidate | None) -> Candidate:
    """The most accurate candidate over the folds, unless it does not beat the default recipe (the first backbone's
    tuned linear head) clearly on their paired fold differences (`clearly_better`): with a few labels per class a
    fold holds a handful of items, and a recipe must show it is better, not merely luckier, to be chosen."""
    top = max(scored, key=lambda c: (round(float(np.mean(c.fold_accuracy)), 9), -scored.index(c)))
    if default is None or default is top or not default.scored or len(top.fold_accuracy) < 2:
        return top
    n = min(len(top.fold_accuracy), len(default.fold_accuracy))  # costly candidates ran the first draw of folds only
    return top if clearly_better(np.asarray(top.fold_accuracy[:n]) - np.asarray(default.fold_accuracy[:n])) else default


def _default_candidate(pool: list[Candidate]) -> Candidate | None:
    return next(
        (c for c in pool if c.kind == "probe" and c.head == "linear" and c.name.endswith(" + linear head")), None
    )


def fold_indices(train: Dataset, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds every candidate is scored on: stratified on the first task (grouped when items have groups)."""
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if not comparable(train):
        from headstart.errors import DataError

        raise DataError(f"{train.source}: --strategy auto needs at least 2 labelled items per class to compare recipes")
    y = np.asarray(train.targets[train.tasks[0]], dtype=object)
    k = int(min(CV_FOLDS, np.unique(y, return_counts=True)[1].min()))
    if train.groups is not None and len(set(train.groups)) >= k:
        return list(StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y, train.groups))
    if len(y) < REPEAT_BELOW:  # a few labels: folds of a handful of items, drawn three times over
        from sklearn.model_selection import RepeatedStratifiedKFold

        return list(RepeatedStratifiedKFold(n_splits=k, n_repeats=3, random_state=seed).split(y, y))
    return list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(y, y))


def comparable(train: Dataset) -> bool:
    """Whether `auto` can cross-validate on `train`: at least 2 items in every class of every label column."""
    from collections import Counter

    return all(min(Counter(str(v) for v in train.targets[t]).values()) >= 2 for t in train.tasks)


def first_draw(folds: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[np.ndarray, np.ndarray]]:
    """The folds up to the first whose test parts together cover every item once (one draw of a repeated k-fold)."""
    seen: set[int] = set()
    n = len({int(i) for _, te in folds for i in te})
    for j, (_, te) in enumerate(folds):
        seen.update(int(i) for i in te)
        if len(seen) == n:
            return folds[: j + 1]
    return folds


def _shortlist(
    train: Dataset, specs: list[str], batch_size: int, progress: bool
) -> tuple[list[str], list[tuple[str, float]]]:
    """All backbones when there are few; else the KEEP_BACKBONES best by LogME on the training features."""
    if len(specs) <= KEEP_BACKBONES:
        return specs, []
    from headstart.backbones import create_backbone
    from headstart.features import extract_features
    from headstart.select.scores import logme

    y = np.asarray(train.targets[train.tasks[0]])
    scores = {}
    for spec in specs:
        x = extract_features(create_backbone(spec), train, batch_size=batch_size, progress=progress)
        scores[spec] = float(logme(x, y))
    order = sorted(specs, key=lambda s: -scores[s])
    return order[:KEEP_BACKBONES], [(s, scores[s]) for s in order[KEEP_BACKBONES:]]


def _score(
    cand: Candidate,
    train: Dataset,
    folds: list[tuple[np.ndarray, np.ndarray]],
    common: dict[str, Any],
    budget: float | None,
    spent: float,
    finetune_options: dict[str, Any],
) -> None:
    fold_fit = _fold_fitter(cand, train, common, finetune_options)
    if cand.kind in COSTLY:  # one draw of the folds, not its repeats: each fold trains a network
        folds = first_draw(folds)
    for i, (tr, te) in enumerate(folds):
        t0 = time.perf_counter()
        accuracy = fold_fit(tr, te)
        cand.fold_accuracy.append(accuracy)
        if budget is not None and cand.kind in COSTLY and i == 0:
            estimate = (time.perf_counter() - t0) * len(folds)
            if spent + estimate > budget:
                cand.note = f"skipped: {len(folds)} folds would take about {estimate:.0f} s, over the time budget"
                return


def _fold_fitter(
    cand: Candidate, train: Dataset, common: dict[str, Any], finetune_options: dict[str, Any]
) -> Callable[[np.ndarray, np.ndarray], float]:
    """A function (train_idx, test_idx) -> mean accuracy over the tasks, for this candidate."""
    tasks = train.tasks
    seed = common["seed"]

    def accuracy(pred: dict[str, list[str]], te: np.ndarray) -> float:
        return float(np.mean([np.mean(np.asarray(pred[t]) == np.asarray(train.targets[t])[te]) for t in tasks]))

    if cand.kind == "baseline":  # text: TF-IDF refitted in each fold, as the saved model would be
        from headstart.backbones.featurizers import TermCounts
        from headstart.probe import tfidf_predict

        counts = TermCounts(train.items)  # counted once; each fold's vectorizer is fitted on its own texts from it

        def fit_baseline(tr: np.ndarray, te: np.ndarray) -> float:
            return accuracy(tfidf_predict(train.subset(tr), train.subset(te), seed=seed, counted=(counts, tr, te)), te)

        return fit_baseline
    if cand.kind == "joined":
        return _joined_fold_fitter(cand, train, common, accuracy)
    if cand.kind == "probe":
        from headstart.backbones import create_backbone
        from headstart.backbones.registry import check_modality
        from headstart.features import extract_features
        from headstart.probe import fit_heads

        bb = create_backbone(cand.spec)
        check_modality(bb, train)
        x = extract_features(bb, train, batch_size=common["batch_size"], progress=common["progress"])
        params = {"class_weight": common["class_weight"], "random_state": seed, **cand.head_params}
        # the head's own settings are chosen once, on the whole training part, then held fixed in every fold: five
        # times cheaper than nesting the choice in each fold, at the price of a slightly kinder score for tuned heads
        tuned = fit_heads(bb, train, x, cand.head, params, seed=seed)
        first = {**params, **tuned[tasks[0]].fitted_params()}

        def fit_probe_fold(tr: np.ndarray, te: np.ndarray) -> float:
            heads = fit_heads(bb, train.subset(tr), x[tr], cand.head, first, seed=seed)
            return accuracy({t: [str(c) for c in heads[t].predict(x[te])] for t in tasks}, te)

        return fit_probe_fold

    from headstart.runs import Partition

    def fit_costly(tr: np.ndarray, te: np.ndarray) -> float:
        a, b = train.subset(tr), train.subset(te)
        part = Partition(a, b, a, "held-out split")
        model = _costly_model(cand, train, part, common, {**finetune_options, "refit": False}, baseline=False)
        return float(np.mean([model.report["tasks"][t]["accuracy"] for t in tasks]))

    return fit_costly


Scorer = Callable[[dict[str, list[str]], np.ndarray], float]  # (predictions per task, test rows) -> accuracy


def _joined_fold_fitter(
    cand: Candidate, train: Dataset, common: dict[str, Any], accuracy: Scorer
) -> Callable[[np.ndarray, np.ndarray], float]:
    """Text: the backbone's cached features beside TF-IDF rows, the TF-IDF refitted on each fold's training texts
    (from texts counted once); the head's regularisation chosen once on the whole training part, as for probes."""
    from headstart.backbones import create_backbone
    from headstart.backbones.featurizers import TermCounts, side_by_side
    from headstart.backbones.registry import check_modality
    from headstart.features import extract_features
    from headstart.probe import fit_heads, tfidf_predict

    seed = common["seed"]
    bb = create_backbone(cand.spec)
    check_modality(bb, train)
    x = extract_features(bb, train, batch_size=common["batch_size"], progress=common["progress"])
    counts = TermCounts(train.items)
    every = np.arange(len(train))
    tfidf, rows, _ = counts.fit(every, every[:0])
    params = {"class_weight": common["class_weight"], "random_state": seed, **cand.head_params}
    params["parts"] = [x.shape[1], rows.shape[1]]
    tuned = fit_heads(tfidf, train, side_by_side(x, rows), "linear", params, seed=seed)
    first = {**params, **tuned[train.tasks[0]].fitted_params()}

    def fit_joined_fold(tr: np.ndarray, te: np.ndarray) -> float:
        pred = tfidf_predict(
            train.subset(tr), train.subset(te), seed=seed, counted=(counts, tr, te), beside=(x[tr], x[te]),
            head_params=first,
        )  # fmt: skip
        return accuracy(pred, te)

    return fit_joined_fold


def _costly_model(
    cand: Candidate,
    ds: Dataset,
    part: Partition,
    common: dict[str, Any],
    finetune_options: dict[str, Any],
    *,
    baseline: bool,
    test_source: str | None = None,
) -> TransferModel:
    quiet = {**common, "progress": False}
    if cand.kind == "setfit":
        from headstart.probe import fit_probe

        return fit_probe(
            ds, part, backbone=cand.spec, adapt="setfit", baseline=baseline, test_source=test_source, **quiet
        )
    from headstart.finetuning import finetune

    options = dict(finetune_options)
    return finetune(
        ds,
        part=part,
        backbone=cand.spec,
        strategy=cand.kind,
        baseline=baseline,
        test_source=test_source,
        **quiet,
        **options,
    )


def _final_model(
    winner: Candidate,
    ds: Dataset,
    part: Partition,
    common: dict[str, Any],
    baseline: bool,
    test_source: str | None,
    finetune_options: dict[str, Any],
) -> TransferModel:
    """The winner trained on every label the partition gives (and scored on its test part, if any)."""
    from headstart.probe import fit_probe

    if winner.kind in COSTLY:
        return _costly_model(winner, ds, part, common, finetune_options, baseline=baseline, test_source=test_source)
    if winner.kind in ("baseline", "joined"):
        from headstart.probe import text_baseline_model

        joined = winner.spec if winner.kind == "joined" else None
        return text_baseline_model(ds, part, common, baseline=baseline, test_source=test_source, joined=joined)
    return fit_probe(
        ds,
        part,
        backbone=winner.spec,
        head=winner.head,
        head_params=winner.head_params,
        baseline=baseline,
        test_source=test_source,
        **common,
    )


def leaderboard_png(report: dict[str, Any], path: Any) -> Any:
    """Candidates' cross-validated accuracy (mean ± std over folds) and time, best first; the chosen one marked."""
    from headstart.evaluation.plots import _pyplot, _save

    rows = [r for r in report["leaderboard"] if r["cv_accuracy"] is not None]
    rows.sort(key=lambda r: r["cv_accuracy"])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(rows) + 2.0))
    y = np.arange(len(rows))
    colours = [
        "tab:green" if r["chosen"] else ("tab:grey" if r["name"].startswith("baseline") else "tab:blue") for r in rows
    ]
    means = [r["cv_accuracy"] for r in rows]
    ax.barh(y, means, xerr=[r["cv_std"] for r in rows], color=colours, capsize=3)
    ax.set_yticks(y, [f"{r['name']}  ({r['seconds']:.0f})" for r in rows], fontsize=8)
    lo = max(0.0, min(m - r["cv_std"] for m, r in zip(means, rows)) - 0.05)
    for yi, m in zip(y, means):
        ax.text(lo + 0.005, yi, f"{m:.3f}", va="center", ha="left", fontsize=8, color="white")
    ax.set_xlim(lo, 1.0)
    ax.set_xlabel("cross-validated accuracy (mean ± std over folds)")
    legend = "green: chosen; grey: the simple baseline; in brackets: seconds spent"
    fig.suptitle(f"{report['title']}\n{report['leaderboard_on']}\n{legend}", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return _save(fig, path)
