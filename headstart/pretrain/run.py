"""`pretrain`: build or adapt a backbone from unlabelled data, save it as a folder that `local:DIR` loads.

    import headstart as hs
    result = hs.pretrain("samples:digits", method="contrastive", out="runs/simclr", epochs=30,
                         eval_data="samples:digits")
    hs.fit("samples:digits", backbone=result.spec, labels_per_class=10)  # result.spec == "local:/.../runs/simclr"

The run folder holds `headstart.json` (a `backbone` section that `local:` reads, and a `pretrain` section: method,
settings, data, history, time, throughput), `backbone.safetensors`, `report.md`, `history.csv`, `loss-curve.png`,
`figures/` (e.g. a GAN's sample grids), `checkpoint/` (for `resume=True`) and, with `eval_data`, the transfer
evaluation (`eval.json`, `eval.md`). The folder is written atomically: a crash leaves the previous one (or the
checkpoint alone).
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from headstart.data.dataset import Dataset
from headstart.pretrain.common import CHECKPOINT_DIR, FIGURES_DIR, PretrainError, PretrainJob, Settings
from headstart.pretrain.registry import METHODS
from headstart.training.checkpoint import Checkpointer, read_json
from headstart.training.epochs import EpochRunner
from headstart.training.fabric import make_fabric
from headstart.training.settings import DistributedConfig

FALLBACK_DEFAULTS: dict[str, Any] = {"epochs": 10, "batch_size": 128, "lr": 1e-3}


@dataclass
class PretrainResult:
    out: Path
    method: str
    finished: bool  # False when stopped early (`stop_after`): resume to finish
    history: list[dict[str, Any]]
    seconds: float
    spec: str | None = None  # `local:OUT` once finished
    resumed_at: int | None = None
    evaluation: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    backbone: Any = None  # the trained Backbone, in memory (on rank 0 of a finished run)
    global_rank: int = 0  # this process's rank in a distributed run; only rank 0 saves and evaluates

    def to_dict(self) -> dict[str, Any]:
        return {
            "out": str(self.out),
            "method": self.method,
            "finished": self.finished,
            "spec": self.spec,
            "resumed_at": self.resumed_at,
            "seconds": round(self.seconds, 2),
            "history": self.history,
            "evaluation": self.evaluation,
            "notes": self.notes,
        }


def method_module(method: str) -> ModuleType:
    if method not in METHODS:
        raise PretrainError(f"unknown pretraining method {method!r}; known: {', '.join(METHODS)}")
    try:
        return importlib.import_module(METHODS[method])
    except ModuleNotFoundError as exc:
        if exc.name == METHODS[method]:
            raise PretrainError(f"pretraining method {method!r} is not available in this version") from None
        raise


def resolve_options(method: str, module: ModuleType, given: dict[str, Any]) -> dict[str, Any]:
    """The method's options: its defaults, overridden by `given` (converted to each default's type)."""
    defaults: dict[str, Any] = dict(getattr(module, "OPTIONS", {}))
    unknown = sorted(set(given) - set(defaults))
    if unknown:
        known = ", ".join(f"{k} (default {v!r})" for k, v in defaults.items()) or "none"
        raise PretrainError(f"{method} has no option {', '.join(unknown)}; its options: {known}")
    out = dict(defaults)
    for key, value in given.items():
        default = defaults[key]
        try:
            if isinstance(default, bool):
                out[key] = value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")
            elif isinstance(default, (int, float, str)) and default is not None:
                out[key] = type(default)(value)
            else:
                out[key] = value
        except (TypeError, ValueError):
            raise PretrainError(f"{method} option {key} must be a {type(default).__name__}, not {value!r}") from None
    return out


def pretrain(
    data: Any,
    *,
    method: str,
    out: str | Path,
    backbone: str | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    lr: float | None = None,
    seed: int = 0,
    resume: bool = False,
    eval_data: Any = None,
    eval_budgets: tuple[int | None, ...] = (4, 10, None),
    test_size: float = 0.25,
    accelerator: str = "auto",
    devices: int | str = 1,
    num_nodes: int = 1,
    distributed_strategy: str = "auto",
    precision: str | None = None,
    stop_after: int | None = None,
    text_column: str | None = None,
    strict: bool = False,
    progress: bool = True,
    **options: Any,
) -> PretrainResult:
    """Pretrain with `method` (autoencoder, gan, contrastive, masked) on the items of `data` (labels ignored).

    `backbone` is the spec to start from (its weights, continued) or whose architecture to train from scratch
    (`...?init=random`); None takes the method's default. Other keyword `options` are the method's own (see its
    `OPTIONS`, e.g. `variant="denoising"` for the autoencoder).
    With `eval_data` (labelled), the items of its test split (`test_size`, `seed`) are removed from the pretraining
    pool, and after training a linear probe compares the new backbone with raw inputs, PCA of the same size and the
    starting backbone at each labels-per-class budget in `eval_budgets` (None = all).
    `stop_after=k` ends this call after k epochs, as an interruption would; `resume=True` continues from the last
    epoch checkpointed in `out` under the same settings. Devices, precision and strategy are Fabric's.
    """
    t0 = time.perf_counter()
    module = method_module(method)
    ds, eval_ds, notes = _pool(method, module, data, eval_data, test_size=test_size, seed=seed,
                               text_column=text_column, strict=strict)  # fmt: skip
    settings = _settings(method, module, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, options=options)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PretrainError(f"{out}: exists and is not a folder")
    if resume and read_json(out / CHECKPOINT_DIR) is None:
        notes.append(f"no checkpoint in {out}: started from the beginning")
    config = {
        "settings": settings.to_json(),
        "backbone": backbone,
        "data": {"source": ds.source, "n_items": len(ds), "fingerprint": ds.fingerprint()},
    }
    fabric = make_fabric(DistributedConfig(accelerator, devices, num_nodes, distributed_strategy, precision))
    runner = EpochRunner(
        fabric, epochs=settings.epochs, seed=seed, checkpoints=Checkpointer(out / CHECKPOINT_DIR, config, fabric),
        log_dir=out, progress=progress, name="pretraining", batch_size=settings.batch_size,
    )  # fmt: skip
    job = PretrainJob(ds, backbone, settings, fabric, runner, out / FIGURES_DIR, resume=resume, stop_after=stop_after)
    if fabric.global_rank == 0:
        job.out.mkdir(parents=True, exist_ok=True)
    result = module.train(job)
    outcome = PretrainResult(
        out=out,
        method=method,
        finished=not job.stopped,
        history=list(result.history),
        seconds=time.perf_counter() - t0,
        resumed_at=runner.resumed_at,
        notes=notes + list(result.notes),
        backbone=result.backbone,
        global_rank=int(fabric.global_rank),
    )
    if job.stopped or fabric.global_rank != 0:
        return outcome
    from headstart.pretrain.report import save_run

    save_run(out, result, config, outcome, ds)
    outcome.spec = f"local:{out.resolve()}"
    if eval_ds is not None:
        from headstart.pretrain.evaluate import transfer_evaluation

        outcome.evaluation = transfer_evaluation(
            outcome.spec, eval_ds, start=backbone, out=out, budgets=eval_budgets, test_size=test_size, seed=seed,
            progress=progress,
        )  # fmt: skip
    return outcome


def _pool(
    method: str,
    module: ModuleType,
    data: Any,
    eval_data: Any,
    *,
    test_size: float,
    seed: int,
    text_column: str | None,
    strict: bool,
) -> tuple[Dataset, Dataset | None, list[str]]:
    """The items to pretrain on (without the evaluation's test items), the evaluation data, and notes."""
    ds = _load(data, text_column=text_column, strict=strict)
    modalities = tuple(getattr(module, "MODALITIES", ("image",)))
    if ds.modality not in modalities:
        raise PretrainError(
            f"{method} pretraining works on {' or '.join(modalities)} data; {ds.source} is {ds.modality} data"
        )
    eval_ds = _load(eval_data, text_column=text_column, strict=strict) if eval_data is not None else None
    notes: list[str] = []
    if eval_ds is not None:
        ds, dropped = _exclude_test_items(ds, eval_ds, test_size=test_size, seed=seed)
        if dropped:
            notes.append(f"{dropped} item(s) of the evaluation's test split left out of pretraining")
    if len(ds) < 2:
        what = "images" if ds.modality == "image" else "texts"
        raise PretrainError(f"{ds.source}: {len(ds)} {what} to pretrain on; at least 2 are needed")
    return ds, eval_ds, notes


def _settings(
    method: str,
    module: ModuleType,
    *,
    epochs: int | None,
    batch_size: int | None,
    lr: float | None,
    seed: int,
    options: dict[str, Any] | None,
) -> Settings:
    """The run's settings: those given, else the method's defaults, else the framework's."""
    defaults = {**FALLBACK_DEFAULTS, **getattr(module, "DEFAULTS", {})}
    settings = Settings(
        method=method,
        epochs=int(epochs if epochs is not None else defaults["epochs"]),
        batch_size=int(batch_size if batch_size is not None else defaults["batch_size"]),
        lr=float(lr if lr is not None else defaults["lr"]),
        seed=seed,
        options=resolve_options(method, module, options or {}),
    )
    if settings.epochs < 1 or settings.batch_size < 2 or settings.lr <= 0:
        raise PretrainError("epochs must be at least 1, batch_size at least 2, and lr positive")
    return settings


def _load(data: Any, *, text_column: str | None, strict: bool) -> Dataset:
    if isinstance(data, Dataset):
        return data
    from headstart.data import from_arrays, load_data

    if isinstance(data, (str, Path)):
        return load_data(data, text_column=text_column, strict=strict)
    return from_arrays(data)


def _exclude_test_items(pool: Dataset, labelled: Dataset, *, test_size: float, seed: int) -> tuple[Dataset, int]:
    """The pool without any item whose content equals an item of `labelled`'s test split."""
    from headstart.data import split

    _, test = split(labelled, test_size=test_size, seed=seed)
    held_out = set(test.content_hashes())
    keep = [i for i, h in enumerate(pool.content_hashes()) if h not in held_out]
    kept = pool.subset(keep)
    kept.targets = {}  # pretraining never reads labels
    return kept, len(pool) - len(keep)
