"""The sequence recipe: fine-tune a pretrained model on paired data, score it beside its baselines, save it.

    model = fit_sequence("pairs.csv", task="seq2seq", backbone="st:all-MiniLM-L6-v2", out="runs/headlines")
    model.report["metrics"], model.report["baselines"]      # chrF/BLEU/ROUGE of the model and of each baseline
    model.predict(["An article ..."], num_beams=4)
    evaluate_sequence("runs/headlines", "test.csv")         # the saved model on other data
    SequenceModel.load("runs/headlines")

The held-out part (a split of the data, the sample's fixed split, or `test`) is never trained or validated on; a
validation part carved from the training pairs picks the best epoch. Baselines on the same held-out part:
seq2seq — the same architecture from random weights trained the same way, and the lead words of each source;
both tasks — the pretrained model before fine-tuning, where its output means something (transcribe: zero-shot
Whisper; an `hf:` encoder-decoder). The run folder holds the bundle (`headstart.json`, `model/`, `tokenizer/` or the
task's own files), report.json/.md, metrics.csv, `curves.png` (loss and the metric per epoch) and `checkpoint/`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from headstart.bundle import MANIFEST, file_hash, inside, library_versions, read_manifest, write_folder
from headstart.errors import BundleError, DataError
from headstart.paths import atomic_file
from headstart.sequence import task_module
from headstart.sequence.adapter import Pair, PairSet, SequenceAdapter
from headstart.sequence.baselines import lead_length, lead_words
from headstart.sequence.data import fingerprint, load_pairs, load_sources, split_pairs, subset
from headstart.sequence.metrics import PRIMARY, score

FORMAT = "headstart-sequence"
FORMAT_VERSION = 1
KIND = "sequence"
CURVES_FILE = "curves.png"
RANDOM_INIT_DIR = "baseline-random-init"
MAX_VAL = 200
EXAMPLES = 5


@dataclass
class SequenceModel:
    """A fine-tuned sequence model: its adapter, what it was trained for, and the report of its run."""

    adapter: SequenceAdapter
    task: str
    settings: dict[str, Any] = field(default_factory=dict)  # num_beams, max_length, lead_words
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return self.adapter.spec

    def predict(self, sources: Any, *, num_beams: int | None = None, max_length: int | None = None) -> list[str]:
        """The output text for each source (texts, audio paths or waveforms; or a file/folder/table of them)."""
        items = sources if isinstance(sources, list) else load_sources(sources, task=self.task)[0]
        return self.adapter.generate(items, **self.decoding(num_beams, max_length))

    def decoding(self, num_beams: int | None = None, max_length: int | None = None) -> dict[str, Any]:
        """The generation settings: those given, else the ones the model was trained and scored with."""
        beams = num_beams or int(self.settings.get("num_beams") or 1)
        return {"num_beams": beams, "max_length": max_length or self.settings.get("max_length")}

    def save(self, path: str | Path) -> Path:
        """The bundle folder: headstart.json (with the SHA-256 of every file the task wrote) and those files."""
        manifest: dict[str, Any] = {
            "format": FORMAT, "format_version": FORMAT_VERSION, "kind": KIND, "task": self.task,
            "backbone": {"spec": self.spec}, "settings": self.settings, "metrics": self.report.get("metrics", {}),
            "data": {k: self.report.get(k) for k in ("data", "fingerprint", "n_train", "n_test")},
            "versions": library_versions(),
        }  # fmt: skip

        def write(tmp: Path) -> None:
            manifest["adapter"] = self.adapter.save(tmp)
            written = [p for p in tmp.rglob("*") if p.is_file() and p.name != MANIFEST and _is_model_file(tmp, p)]
            manifest["hashes"] = {p.relative_to(tmp).as_posix(): file_hash(p) for p in sorted(written)}

        return write_folder(path, manifest, more=write)

    @classmethod
    def load(cls, path: str | Path) -> SequenceModel:
        """A saved sequence bundle, its files checked against their recorded SHA-256."""
        folder = Path(path)
        manifest = read_manifest(folder)
        if manifest.get("kind") != KIND or manifest.get("format") != FORMAT:
            raise BundleError(f"{folder / MANIFEST}: not a headstart sequence model (kind {manifest.get('kind')!r})")
        check_hashes(folder, manifest)
        adapter = task_module(str(manifest.get("task"))).load_saved(folder, manifest)
        report_file = folder / "report.json"
        report = json.loads(report_file.read_text()) if report_file.is_file() else {}
        return cls(adapter, str(manifest["task"]), dict(manifest.get("settings") or {}), report)


def _is_model_file(root: Path, path: Path) -> bool:
    """Files the task's `save` wrote (not the run's reports, curves, metrics or checkpoints)."""
    top = path.relative_to(root).parts[0]
    return (
        top not in ("checkpoint", RANDOM_INIT_DIR)
        and path.suffix not in (".png", ".csv", ".md")
        and (top != "report.json")
    )


def is_sequence_bundle(path: str | Path) -> bool:
    """Whether `path` is a folder holding a saved sequence model."""
    try:
        return read_manifest(path).get("kind") == KIND
    except Exception:
        return False


def check_hashes(folder: Path, manifest: dict[str, Any]) -> None:
    """Every file the manifest lists is inside the folder and has its recorded bytes; no weights file is unlisted."""
    listed = manifest.get("hashes")
    if not isinstance(listed, dict) or not listed:
        raise BundleError(f"{folder / MANIFEST}: no 'hashes' of the model's files")
    for name, expected in listed.items():
        file = folder / str(name)
        if not inside(folder, file):
            raise BundleError(f"{folder / MANIFEST}: {name!r} points outside the model folder")
        if not file.is_file():
            raise BundleError(f"{folder}: {name} is missing (the manifest lists it)")
        if file_hash(file) != expected:
            raise BundleError(f"{file}: its SHA-256 is not the one in {MANIFEST}: the file changed after saving")
    for weights in folder.rglob("*.safetensors"):
        name = weights.relative_to(folder).as_posix()
        if _is_model_file(folder, weights) and name not in listed:
            raise BundleError(f"{folder / MANIFEST}: {name} has no hash under 'hashes'")


def fit_sequence(
    data: Any,
    *,
    task: str,
    backbone: str | None = None,
    out: str | Path | None = None,
    strategy: str = "full",
    max_train: int | None = None,
    max_test: int | None = None,
    test: Any = None,
    test_size: float = 0.2,
    seed: int = 0,
    epochs: int = 3,
    lr: float = 1e-4,
    batch_size: int = 8,
    num_beams: int = 1,
    max_length: int | None = None,
    resume: bool = False,
    baseline: bool = True,
    strict: bool = False,
    source_column: str | None = None,
    target_column: str | None = None,
    progress: bool = True,
    train_options: dict[str, Any] | None = None,
    **options: Any,
) -> SequenceModel:
    """Fine-tune `backbone` for `task` on `data` and score it beside its baselines (see the module docstring).

    `options` go to the task's `load_adapter` (seq2seq: `max_source_length`, `max_target_length`);
    `train_options` to `SequenceTrainConfig` (warmup, weight_decay, eval_max, distributed...)."""
    from headstart.sequence.train import SequenceTrainConfig

    t0 = time.perf_counter()
    module = task_module(task)
    spec = backbone or getattr(module, "DEFAULT_BACKBONE", None)
    if not spec:
        raise DataError(f"task {task} needs a backbone (--backbone)")
    pairs = load_pairs(data, task=task, source_column=source_column, target_column=target_column, strict=strict)
    train, held_out = _partition(pairs, test, task, test_size, seed, max_train, source_column, target_column, strict)
    if max_test is not None and max_test < len(held_out):  # a quick look: a seeded choice of the held-out pairs
        import numpy as np

        held_out = subset(held_out, np.sort(np.random.default_rng(seed).choice(len(held_out), max_test, False)))
    fit_part, val_part = _carve_validation(train, seed)
    folder = Path(out) if out is not None else None
    config = SequenceTrainConfig(
        epochs=epochs, lr=lr, batch_size=batch_size, strategy=strategy, num_beams=num_beams, max_length=max_length,
        seed=seed, resume=resume, progress=progress, **(train_options or {}),
    )  # fmt: skip
    adapter = module.load_adapter(spec, seed=seed, **options)
    sources, references = [p.source for p in held_out.pairs], [p.target or "" for p in held_out.pairs]
    generate = {"num_beams": num_beams, "max_length": max_length}
    baselines: dict[str, Any] = {}
    if baseline and getattr(adapter, "zero_shot", True):
        baselines["pretrained, not fine-tuned"] = score(task, adapter.generate(sources, **generate), references)
    result = _train(adapter, fit_part, val_part, config, folder)
    outputs = adapter.generate(sources, **generate)
    metrics = score(task, outputs, references)
    n_lead = lead_length([p.target or "" for p in train.pairs])
    if baseline and task == "seq2seq":
        baselines[f"lead {n_lead} words"] = score(task, lead_words(sources, n_lead), references)
        rand = module.load_adapter(spec, seed=seed, random_init=True, **options)
        _train(rand, fit_part, val_part, config, folder / RANDOM_INIT_DIR if folder else None)
        baselines["same architecture, random init"] = score(task, rand.generate(sources, **generate), references)
        del rand  # its weights are not needed any more (a MiniLM pair: ~200 MB)
    report = {
        "title": f"{task}: {spec} fine-tuned ({strategy})", "task": task, "backbone": spec, "strategy": strategy,
        "data": pairs.source, "test_data": held_out.source if test is not None else None,
        "fingerprint": fingerprint(train), "seed": seed, "max_train": max_train, "max_test": max_test,
        "n_train": len(fit_part), "n_val": len(val_part), "n_test": len(held_out),
        "primary": PRIMARY[task][0], "metrics": metrics, "baselines": baselines,
        "settings": {"epochs": epochs, "lr": lr, "batch_size": batch_size, **generate, **options},
        "best_epoch": result.best_epoch, "resumed_at": result.resumed_at, "parameters": result.parameters,
        "history": result.history, "examples": _examples(held_out.pairs, outputs),
        "skipped": [str(i) for i in pairs.issues], "timing_s": {"total": round(time.perf_counter() - t0, 2)},
    }  # fmt: skip
    model = SequenceModel(adapter, task, {**generate, "lead_words": n_lead}, report)
    if folder is not None:
        save_run(model, folder)
    return model


def _partition(
    pairs: PairSet, test: Any, task: str, test_size: float, seed: int, max_train: int | None, *columns_strict: Any
) -> tuple[PairSet, PairSet]:
    if test is None:
        return split_pairs(pairs, test_size=test_size, seed=seed, max_train=max_train)
    source_column, target_column, strict = columns_strict
    held_out = load_pairs(test, task=task, source_column=source_column, target_column=target_column, strict=strict)
    train = pairs
    if max_train is not None and max_train < len(pairs):
        import numpy as np

        train = subset(pairs, np.sort(np.random.default_rng(seed).choice(len(pairs), size=max_train, replace=False)))
    return train, held_out


def _carve_validation(train: PairSet, seed: int) -> tuple[list[Pair], list[Pair]]:
    """A tenth of the training pairs (at most MAX_VAL; none under 10 pairs) to choose the best epoch on."""
    import numpy as np

    n = len(train)
    n_val = 0 if n < 10 else min(MAX_VAL, max(1, n // 10))
    order = np.random.default_rng(seed + 1).permutation(n)
    val = set(order[:n_val].tolist())
    return [p for i, p in enumerate(train.pairs) if i not in val], [p for i, p in enumerate(train.pairs) if i in val]


def _train(adapter: SequenceAdapter, fit: list[Pair], val: list[Pair], config: Any, folder: Path | None) -> Any:
    from headstart.sequence.train import train_sequence

    return train_sequence(adapter, fit, val, config, folder=folder)


def _examples(pairs: list[Pair], outputs: list[str]) -> list[dict[str, str]]:
    return [
        {"where": p.where, "source": _short(p.source), "target": p.target or "", "output": o}
        for p, o in zip(pairs[:EXAMPLES], outputs, strict=False)
    ]


def _short(source: Any, width: int = 200) -> str:
    text = str(source) if not hasattr(source, "shape") else f"waveform {tuple(source.shape)}"
    return text if len(text) <= width else text[: width - 3] + "..."


def evaluate_sequence(
    model: SequenceModel | str | Path,
    data: Any,
    *,
    num_beams: int | None = None,
    max_length: int | None = None,
    baseline: bool = True,
    strict: bool = False,
    source_column: str | None = None,
    target_column: str | None = None,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """The model's metrics on every pair of `data` (and the lead-words baseline, for seq2seq, with the training
    run's N); with `out`, report.json/.md written there."""
    m = model if isinstance(model, SequenceModel) else SequenceModel.load(model)
    pairs = load_pairs(data, task=m.task, source_column=source_column, target_column=target_column, strict=strict)
    sources, references = [p.source for p in pairs.pairs], [p.target or "" for p in pairs.pairs]
    outputs = m.predict(sources, num_beams=num_beams, max_length=max_length)
    report: dict[str, Any] = {
        "title": f"evaluate {m.task}: {m.spec}", "task": m.task, "backbone": m.spec, "data": pairs.source,
        "n_test": len(pairs), "primary": PRIMARY[m.task][0], "metrics": score(m.task, outputs, references),
        "baselines": {}, "examples": _examples(pairs.pairs, outputs), "skipped": [str(i) for i in pairs.issues],
    }  # fmt: skip
    if baseline and m.task == "seq2seq":
        n = int(m.settings.get("lead_words", 1))
        report["baselines"][f"lead {n} words"] = score(m.task, lead_words(sources, n), references)
    if baseline:
        found = _pretrained_baseline(m, sources, references, num_beams=num_beams, max_length=max_length)
        report["baselines"].update(found.pop("baselines", {}))
        report.update(found)
    if out is not None:
        Path(out).mkdir(parents=True, exist_ok=True)
        write_reports(Path(out), report, name="evaluation")
    return report


def _pretrained_baseline(m: SequenceModel, sources: list[Any], references: list[str], **generate: Any) -> dict:
    """The backbone the model was fine-tuned from, before fine-tuning, scored on the same pairs (as `fit` scores it:
    transcribe's zero-shot Whisper, an `hf:` encoder-decoder) — under `baselines`, or a line under
    `baseline_unavailable` when the backbone cannot be loaded any more here (a baseline is never worth failing for)."""
    import inspect

    from headstart.errors import HeadstartError

    if not getattr(m.adapter, "zero_shot", True):  # same kind as the backbone (a warm start): nothing to load
        return {}
    module = task_module(m.task)
    accepted = inspect.signature(module.load_adapter).parameters
    skip = ("spec", "seed", "random_init")
    options = {k: v for k, v in m.settings.items() if k in accepted and k not in skip and v is not None}
    try:
        adapter = module.load_adapter(m.spec, seed=0, **options)
    except (HeadstartError, OSError) as exc:
        return {"baseline_unavailable": f"{m.spec} (not fine-tuned) could not be loaded: {exc}"}
    outputs = adapter.generate(sources, **m.decoding(**generate))  # decoded as the model itself is
    return {"baselines": {"pretrained, not fine-tuned": score(m.task, outputs, references)}}


def predict_sequence(
    model: SequenceModel | str | Path,
    inputs: Any,
    *,
    num_beams: int | None = None,
    max_length: int | None = None,
    source_column: str | None = None,
) -> tuple[list[dict[str, str]], list[str]]:
    """One row per usable input, `{"input": where, "output": text}`, and the skipped inputs."""
    m = model if isinstance(model, SequenceModel) else SequenceModel.load(model)
    sources, wheres, issues = load_sources(inputs, task=m.task, source_column=source_column)
    outputs = m.predict(sources, num_beams=num_beams, max_length=max_length)
    return [{"input": w, "output": o} for w, o in zip(wheres, outputs, strict=True)], [str(i) for i in issues]


def save_run(model: SequenceModel, folder: Path) -> Path:
    """The bundle, then report.json/.md and the curves, in one folder."""
    model.save(folder)
    if model.report.get("history"):
        curves_png(model.report["history"], folder / CURVES_FILE, model.report["title"], model.report["primary"])
        model.report["curves_png"] = CURVES_FILE
    write_reports(folder, model.report)
    return folder


def write_reports(folder: Path, report: dict[str, Any], *, name: str = "report") -> None:
    with atomic_file(folder / f"{name}.json") as f:
        json.dump(report, f, indent=2, default=str)
    with atomic_file(folder / f"{name}.md") as f:
        f.write(to_markdown(report))


def to_markdown(report: dict[str, Any]) -> str:
    """The report for people: the model beside its baselines, the settings, a few examples, skipped items."""
    primary = report["primary"]
    rows = {"this model": report["metrics"], **report.get("baselines", {})}
    names = list(report["metrics"])
    lines = [f"# {report['title']}", ""]
    for key in ("data", "test_data", "seed", "max_train", "max_test", "n_train", "n_val", "n_test", "best_epoch"):
        if report.get(key) is not None:
            lines.append(f"- **{key}**: {report[key]}")
    lines += ["", f"Scored on the same {report['n_test']} held-out pairs (main metric: {primary}).", ""]
    lines += ["| model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {n} | " + " | ".join(f"{m.get(k, float('nan')):.2f}" for k in names) + " |" for n, m in rows.items()]
    if report.get("curves_png"):
        lines += ["", f"![loss and {primary} per epoch]({report['curves_png']})"]
    lines += ["", "## Examples", ""]
    for ex in report.get("examples", []):
        lines += [f"- {ex['where']}: **{ex['output']}** (reference: {ex['target']})"]
    issues = report.get("skipped", [])
    lines += ["", f"## Skipped items: {len(issues)}", ""] + [f"- {i}" for i in issues[:200]]
    return "\n".join(lines) + "\n"


def curves_png(history: list[dict[str, Any]], path: Path, title: str, metric: str) -> Path:
    """Training and validation loss (left axis) and the validation metric (right axis) per epoch."""
    from headstart.evaluation.plots import _pyplot, _save

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 4.3))
    epochs = [r["epoch"] for r in history]
    ax.plot(epochs, [r["loss"] for r in history], marker="o", label="train loss")
    handles = [ax]
    if any("val_loss" in r for r in history):
        ax.plot(epochs, [r.get("val_loss") for r in history], marker="o", label="validation loss")
        right = ax.twinx()
        right.plot(epochs, [r.get(f"val_{metric}") for r in history], marker="s", color="tab:green",
                   label=f"validation {metric}")  # fmt: skip
        right.set_ylabel(metric)
        handles.append(right)
    ax.set_xlabel("epoch")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.set_ylabel("loss")
    ax.grid(alpha=0.3)
    found = [h for a in handles for h in a.get_legend_handles_labels()[0]]
    ax.legend(found, [h.get_label() for h in found], loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3,
              fontsize=8, frameon=False)  # fmt: skip
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return _save(fig, path)
