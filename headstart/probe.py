"""The probe recipe: frozen (or contrastively adapted) backbone features, cached, and a head tuned on them.

Scored as `headstart.runs.partition` says (held-out split, separate test set, or cross-validation), then the saved
model is fitted on every labelled item the partition gives it. The simple baseline is scored on the same items.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from headstart.backbones.registry import check_modality
from headstart.data import Dataset
from headstart.errors import DataError
from headstart.model import TransferModel
from headstart.runs import Partition, build_report, concat, cv_predictions, data_info, evaluate_model, summary

# the head's cross-validation groups rows by the data's groups (speakers) from this many distinct groups in training:
# five folds and the MLP's early-stopping slice (1 / 0.15 = 7 groups) each need several groups to draw from
GROUPED_CV_FROM = 8


def fit_probe(
    ds: Dataset,
    part: Partition,
    *,
    backbone: str,
    head: str = "linear",
    head_params: dict[str, Any] | None = None,
    class_weight: str | None = None,
    seed: int = 0,
    batch_size: int = 32,
    baseline: bool = True,
    progress: bool = True,
    adapt: str | None = None,
    adapt_options: dict[str, Any] | None = None,
    test_source: str | None = None,
) -> TransferModel:
    """Fit `head` on `backbone`'s features of `part.train`, score it, refit on `part.final`; a TransferModel with
    `report`. `adapt="setfit"` first tunes a text backbone contrastively on the labelled items (SetFit)."""
    from headstart.backbones import create_backbone
    from headstart.features import extract_features

    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    bb = create_backbone(backbone)
    check_modality(bb, ds)
    adapted: dict[str, Any] = {}
    if adapt:
        adapted = _adapt(bb, part.train, adapt, seed, progress, adapt_options or {})
    scored = part.train if part.test is None else concat(part.train, part.test)
    x_scored = extract_features(bb, scored, batch_size=batch_size, progress=progress)
    x_train = x_scored[: len(part.train)]
    timing["extract"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    params = {"class_weight": class_weight, "random_state": seed, **(head_params or {})}
    heads = fit_heads(bb, part.train, x_train, head, params, seed=seed)
    timing["fit"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    scoring = TransferModel(bb.spec, bb.describe(), heads, _backbone=bb)
    if part.test is not None:
        metrics = evaluate_model(scoring, part.test, x_scored[len(part.train) :])
    else:
        metrics = _cross_validated(bb, part.train, x_train, head, params, seed)
    if baseline:
        add_baseline(metrics, part, seed)
    timing["evaluate"] = time.perf_counter() - t0

    if part.refits:
        t0 = time.perf_counter()
        if adapt:  # the adapted backbone saw only the training part: adapt a fresh one on every label
            bb = create_backbone(backbone)
            adapted = _adapt(bb, part.final, adapt, seed, progress, adapt_options or {})
            x_final = extract_features(bb, part.final, batch_size=batch_size, progress=progress)
        else:
            x_final = x_scored  # `final` is train then test, the order the features were extracted in
        heads = fit_heads(bb, part.final, x_final, head, params, seed=seed)
        timing["refit"] = time.perf_counter() - t0

    info = bb.describe()
    if adapted:
        info = {**info, "architecture": backbone, "fine_tuned": {"strategy": adapt, **adapted}}
    model = TransferModel(bb.spec, info, heads, _backbone=bb, tuned_backbone=bool(adapt))
    model.data_info = data_info(ds, part, seed)
    _report(model, ds, part, metrics, timing, head=head, adapt=adapt, adapted=adapted, test_source=test_source)
    return model


def _report(
    model: TransferModel,
    ds: Dataset,
    part: Partition,
    metrics: dict[str, Any],
    timing: dict[str, float],
    **how: Any,
) -> None:
    """The probe's report: metrics beside the baseline, which items trained it, what the head chose."""
    adapt = how["adapt"]
    model.metrics = {task: summary(m) for task, m in metrics.items()}
    title = f"fit: {ds.source} with {model.backbone_spec}" + (f" ({adapt})" if adapt else "")
    model.report = build_report(model, ds, how["head"], metrics, timing, title=title)
    model.report.update(part.describe(ds.source, how["test_source"]))
    if adapt and part.test is None:  # the folds' heads were scored on an encoder tuned with every fold's labels
        model.report["accuracy_from"] += "; the encoder was tuned on all of them, so this estimate is optimistic"
    model.report["strategy"] = adapt or "probe"
    if how["adapted"]:
        model.report["adapt"] = how["adapted"]
    model.report["heads"] = {t: h.chosen_ for t, h in model.heads.items() if getattr(h, "chosen_", None)}


def fit_heads(bb: Any, train: Dataset, x: Any, head: str, params: dict[str, Any], *, seed: int) -> dict[str, Any]:
    """One head per task on `x`, plus features of augmented copies of the training items where the backbone's
    modality has them (audio: noise, gain, shifts), so the probe learns the invariances fine-tuning would."""
    from headstart.heads import make_head

    x_aug, y_aug = augmented_views(bb, train, seed)
    groups = row_groups(train, x.shape[0], len(x_aug))  # x may be sparse rows (TF-IDF), which have no len()
    heads = {}
    for task in train.tasks:
        xs = np.concatenate([x, x_aug]) if len(x_aug) else x
        ys = list(train.targets[task]) + list(y_aug.get(task, []))
        heads[task] = make_head(head, **params).fit(xs, ys, groups=groups)
    return heads


def row_groups(train: Dataset, n_items: int, n_copies: int) -> np.ndarray | None:
    """One group id per row of the head's training matrix (the items, then their augmented copies: copy j of item i
    is row (j + 1) * n + i), for the head's own cross-validation and early stopping. Where the data has groups (the
    speaker of each clip) and at least GROUPED_CV_FROM of them, the rows of one group stay together, so the settings
    are chosen for groups never heard in training, as the held-out split measures them; else each item and its
    copies stay together (no copy of a clip a fold tests on trains that fold); None when there are no copies."""
    repeat = 1 + n_copies // max(n_items, 1)
    if train.groups is not None and len(set(train.groups)) >= GROUPED_CV_FROM:
        _, ids = np.unique(np.asarray([str(g) for g in train.groups], dtype=object), return_inverse=True)
        return np.tile(ids, repeat)
    return np.tile(np.arange(n_items), repeat) if n_copies else None


def augmented_views(bb: Any, train: Dataset, seed: int) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Features of augmented copies of the training items, and their labels (none for most modalities)."""
    from headstart.features.augmented import training_views

    return training_views(bb, train, seed=seed)


def add_baseline(metrics: dict[str, Any], part: Partition, seed: int) -> None:
    """The modality's simple baseline, scored on exactly the items the model was scored on."""
    from headstart.evaluation import classification_metrics
    from headstart.evaluation.baselines import baseline_name, baseline_predict

    train = part.train
    for task in train.tasks:
        if part.test is not None:
            truth, pred = part.test.targets[task], baseline_predict(train, part.test, task, seed=seed)
        else:

            def fold(tr: np.ndarray, te: np.ndarray, task: str = task) -> list[str]:
                return baseline_predict(train.subset(tr), train.subset(te), task, seed=seed)

            truth, pred = train.targets[task], cv_predictions(fold, train, task, seed=seed)
        base = classification_metrics(truth, pred, metrics[task]["labels"])
        metrics[task]["baseline"] = {"name": baseline_name(train.modality), **summary(base)}


def _cross_validated(
    bb: Any, train: Dataset, x: np.ndarray, head: str, params: dict[str, Any], seed: int
) -> dict[str, Any]:
    """Metrics of out-of-fold predictions: each fold's heads (and their own tuning) see only the other folds."""
    from headstart.evaluation import classification_metrics

    metrics = {}
    for task in train.tasks:

        def fold(tr: np.ndarray, te: np.ndarray, task: str = task) -> list[str]:
            heads = fit_heads(bb, train.subset(tr), x[tr], head, params, seed=seed)
            return [str(c) for c in heads[task].predict(x[te])]

        pred = cv_predictions(fold, train, task, seed=seed)
        labels = sorted({str(v) for v in train.targets[task]})
        metrics[task] = classification_metrics(train.targets[task], pred, labels)
    return metrics


def _adapt(bb: Any, train: Dataset, how: str, seed: int, progress: bool, options: dict[str, Any]) -> dict[str, Any]:
    if how != "setfit":
        raise DataError(f"unknown adaptation {how!r}")
    if bb.modality != "text":
        raise DataError(f"--strategy setfit tunes sentence encoders on text; backbone {bb.spec} encodes {bb.modality}")
    from headstart.finetune.contrastive_text import contrastive_tune

    # 4 pairs per item: 20 (the paper's) measured no better on BBC News and tweets, at 5x the time (setfit.json)
    return contrastive_tune(bb, train, seed=seed, progress=progress, **{"pairs_per_item": 4, **options})


TFIDF_HEAD = {"C": 10.0, "scaling": "none"}  # the text baseline's logistic regression (evaluation/baselines.py)
# a sentence encoder's features beside the TF-IDF rows: each part divided by its rows' mean length (TF-IDF rows are
# unit length, an encoder's may be any), not standardised (that would blow up 20,000 mostly-zero columns' rare
# terms); the regularisation is tuned. Chosen by `auto` where it wins.
JOINED_HEAD = {"scaling": "parts"}


def tfidf_predict(
    train: Dataset,
    test: Dataset,
    *,
    seed: int = 0,
    counted: tuple[Any, np.ndarray, np.ndarray] | None = None,
    beside: tuple[np.ndarray, np.ndarray] | None = None,
    head_params: dict[str, Any] | None = None,
) -> dict[str, list[str]]:
    """The text baseline as headstart runs it as a model: TF-IDF fitted on `train`, a linear head per task. With
    `counted` (a `TermCounts` of texts that hold both, and the rows of `train` and `test` in it), the same result
    without counting the texts again: cross-validation counts once and calls this for every fold. With `beside`
    (a backbone's features of the train and test items), the head sees them beside the TF-IDF rows."""
    from headstart.backbones.featurizers import fit_tfidf_rows, side_by_side

    if counted is None:
        bb, x_train = fit_tfidf_rows(train.items)
        x_test = bb.sparse_rows(test.items)
    else:
        counts, rows, test_rows = counted
        bb, x_train, x_test = counts.fit(rows, test_rows)
    params = {"random_state": seed, **(TFIDF_HEAD if head_params is None else head_params)}
    if beside is not None:
        params["parts"] = [beside[0].shape[1], x_train.shape[1]]  # a fold's vocabulary may be smaller
        x_train, x_test = side_by_side(beside[0], x_train), side_by_side(beside[1], x_test)
    heads = fit_heads(bb, train, x_train, "linear", params, seed=seed)
    return {task: [str(c) for c in head.predict(x_test)] for task, head in heads.items()}


def text_baseline_model(
    ds: Dataset,
    part: Partition,
    common: dict[str, Any],
    *,
    baseline: bool,
    test_source: str | None,
    joined: str | None = None,
) -> TransferModel:
    """The TF-IDF baseline, scored as the partition says and refit on `part.final`, saved like any model (its
    vocabulary and IDF weights as the backbone's tensors). With `joined` (a text backbone's spec), the model is
    that backbone's features beside the TF-IDF rows (`concat:SPEC + features:tfidf?...`), its head tuned
    (JOINED_HEAD)."""
    from headstart.backbones.featurizers import ConcatBackbone, fit_tfidf_rows, side_by_side
    from headstart.evaluation import classification_metrics
    from headstart.features import extract_features

    t0 = time.perf_counter()
    seed = common.get("seed", 0)
    train = part.train
    head_params = TFIDF_HEAD if joined is None else {**JOINED_HEAD, "class_weight": common.get("class_weight")}
    encoder = None if joined is None else _text_encoder(joined, train)

    def features(data: Dataset) -> np.ndarray:
        assert encoder is not None
        return extract_features(
            encoder, data, batch_size=common.get("batch_size", 32), progress=common.get("progress", False)
        )

    metrics: dict[str, Any] = {}
    if part.test is not None:
        beside = None if encoder is None else (features(train), features(part.test))
        pred = tfidf_predict(train, part.test, seed=seed, beside=beside, head_params=head_params)
        truth = part.test.targets
    else:
        from headstart.backbones.featurizers import TermCounts

        pred, truth, counts = {}, train.targets, TermCounts(train.items)
        x_train = None if encoder is None else features(train)
        for task in train.tasks:

            def fold(tr: np.ndarray, te: np.ndarray, task: str = task) -> list[str]:
                beside = None if x_train is None else (x_train[tr], x_train[te])
                return tfidf_predict(
                    train.subset(tr), train.subset(te), seed=seed, counted=(counts, tr, te), beside=beside,
                    head_params=head_params,
                )[task]  # fmt: skip

            pred[task] = cv_predictions(fold, train, task, seed=seed)
    for task in train.tasks:
        labels = sorted({str(v) for v in train.targets[task]} | {str(v) for v in truth[task]})
        metrics[task] = classification_metrics(truth[task], pred[task], labels)
    if baseline:
        add_baseline(metrics, part, seed)
    bb, x = fit_tfidf_rows(part.final.items)
    title = f"fit: {ds.source} with TF-IDF"
    if encoder is not None:
        head_params = {**head_params, "parts": [encoder.embed_dim, x.shape[1]]}
        x = side_by_side(features(part.final), x)
        bb = ConcatBackbone(f"concat:{encoder.spec} + {bb.spec}", [encoder, bb])
        title = f"fit: {ds.source} with {encoder.spec} ⊕ TF-IDF"
    heads = fit_heads(bb, part.final, x, "linear", {"random_state": seed, **head_params}, seed=seed)
    model = TransferModel(bb.spec, bb.describe(), heads, _backbone=bb, tuned_backbone=True)
    model.data_info = data_info(ds, part, seed)
    model.metrics = {task: summary(m) for task, m in metrics.items()}
    model.report = build_report(model, ds, "linear", metrics, {"fit": time.perf_counter() - t0}, title=title)
    model.report.update(part.describe(ds.source, test_source))
    return model


def _text_encoder(spec: str, train: Dataset) -> Any:
    from headstart.backbones import create_backbone

    encoder = create_backbone(spec)
    check_modality(encoder, train)
    return encoder
