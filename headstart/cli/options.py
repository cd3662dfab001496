"""Options shared by the commands, so that one name means one thing everywhere, with one default.

Groups (each shown in its own panel of `--help`):
- data: `--text-column`, `--label-column`, `--strict`, on every command that reads a table or a folder;
- distributed: `--devices`, `--accelerator`, `--precision`, `--num-nodes`, `--distributed-strategy`, Fabric's,
  on every command that trains a backbone (`--strategy` is always the recipe, never Fabric's);
- scale-out: `--engine`, `--workers`, `--gpus-per-worker`, on every command that extracts features in bulk;
- output: `--format`.
Choices come from the registries (strategies, augmentation levels, pretraining methods, scores, modalities), so a
new entry there is a new choice here.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

import typer

from headstart.data.dataset import MODALITIES
from headstart.finetune.config import AUGMENT_LEVELS, STRATEGIES
from headstart.pretrain.registry import METHODS
from headstart.select.scores import SCORES
from headstart.sequence import TASKS as SEQUENCE_TASKS
from headstart.sequence.strategies import STRATEGIES as SEQUENCE_STRATEGIES

if TYPE_CHECKING:
    from headstart.data import Dataset


def _choices(name: str, values: Any) -> Any:
    return Enum(name, {v.replace("-", "_"): v for v in values}, type=str)  # type: ignore[misc]


Format = _choices("Format", ("table", "json"))
HeadKind = _choices("HeadKind", ("linear", "mlp"))  # headstart.heads.HEADS, whose import pulls in torch
SEQUENCE_ONLY = tuple(s for s in SEQUENCE_STRATEGIES if s not in STRATEGIES)  # full, decoder
Strategy = _choices("Strategy", ("probe", "auto", "setfit", *STRATEGIES, *SEQUENCE_ONLY))
Task = _choices("Task", ("classify", *SEQUENCE_TASKS))
Augment = _choices("Augment", AUGMENT_LEVELS)
Modality = _choices("Modality", sorted(MODALITIES, key=("text", "image", "audio").index))
Method = _choices("Method", METHODS)
ScoreName = _choices("ScoreName", SCORES)

FINETUNING = tuple(STRATEGIES)  # the strategies that train the backbone

DATA_PANEL = "Data"
SEQUENCE_PANEL = "Sequence tasks (--task transcribe, seq2seq)"
NUM_BEAMS = typer.Option(
    None, "--num-beams", help="beam search width (default 1: greedy)", rich_help_panel=SEQUENCE_PANEL
)
MAX_LENGTH = typer.Option(None, "--max-length", help="generate at most N tokens", rich_help_panel=SEQUENCE_PANEL)
SOURCE_COLUMN = typer.Option(
    None, "--source-column", help="the table's source column (text, or audio paths)", rich_help_panel=SEQUENCE_PANEL
)
TARGET_COLUMN = typer.Option(
    None, "--target-column", help="the table's target column (target text, transcript)", rich_help_panel=SEQUENCE_PANEL
)
DISTRIBUTED_PANEL = "Distributed (Lightning Fabric)"

FORMAT = typer.Option("table", "--format", help="table for people, json for machines")

# Which runtime runs a model: PyTorch on a saved model folder, or ONNX Runtime on an export folder (no torch).
Runtime = _choices("Runtime", ("torch", "onnx"))
# The colour of the test-time noise `evaluate --noise-snr` adds (headstart.data.audio.NOISE_COLOURS)
NoiseColour = _choices("NoiseColour", ("white", "pink", "brown", "babble"))
RUNTIME = typer.Option(
    "torch", "--runtime", help="torch: MODEL is a folder saved by fit; onnx: an export folder (headstart export)"
)

# The data group.
TEXT_COLUMN = typer.Option(
    None,
    "--text-column",
    help="table column holding the text (default: found by common names)",
    rich_help_panel=DATA_PANEL,
)
LABEL_COLUMN = typer.Option(
    None,
    "--label-column",
    help="table column holding the labels to look at, one (default: the first found by common names)",
    rich_help_panel=DATA_PANEL,
)
LABEL_COLUMNS = typer.Option(
    None,
    "--label-column",
    help="table column holding labels (default: found by common names); repeat it for several tasks",
    rich_help_panel=DATA_PANEL,
)
STRICT = typer.Option(
    False,
    "--strict",
    help="stop at the first bad item instead of skipping it and listing it",
    rich_help_panel=DATA_PANEL,
)

# The distributed group: Fabric's settings, with Fabric's defaults, wherever a backbone trains.
DEVICES = typer.Option("1", "--devices", help="devices per node: 1, 2, auto, ...", rich_help_panel=DISTRIBUTED_PANEL)
ACCELERATOR = typer.Option("auto", "--accelerator", help="auto, cpu, cuda, mps, ...", rich_help_panel=DISTRIBUTED_PANEL)
PRECISION = typer.Option(
    None,
    "--precision",
    help="32-true, bf16-mixed, 16-mixed, ... (default: Fabric's)",
    rich_help_panel=DISTRIBUTED_PANEL,
)
NUM_NODES = typer.Option(1, "--num-nodes", help="machines taking part", rich_help_panel=DISTRIBUTED_PANEL)
DISTRIBUTED_STRATEGY = typer.Option(
    "auto",
    "--distributed-strategy",
    help="Fabric's strategy: auto, ddp, ddp_spawn, fsdp, ...",
    rich_help_panel=DISTRIBUTED_PANEL,
)
DISTRIBUTED = ("devices", "accelerator", "precision", "num_nodes", "distributed_strategy")

# The scale-out group: where feature extraction runs (headstart.features.engine), on embed, predict, fit, rank and
# diagnose.
SCALE_PANEL = "Scale-out (Ray)"
EngineName = _choices("EngineName", ("local", "ray"))  # headstart.features.engine.ENGINES, whose package pulls in torch
ENGINE = typer.Option(
    "local",
    "--engine",
    help="where features are extracted: local (this process) or ray (the cluster RAY_ADDRESS names, else a local one)",
    rich_help_panel=SCALE_PANEL,
)
WORKERS = typer.Option(
    None, "--workers", help="--engine ray: actors, each holding one backbone (default 1)", rich_help_panel=SCALE_PANEL
)
GPUS_PER_WORKER = typer.Option(
    None,
    "--gpus-per-worker",
    help="--engine ray: GPUs each actor holds (0.5: two actors share one GPU)",
    rich_help_panel=SCALE_PANEL,
)


def scale(ctx: typer.Context, engine: Any, workers: int | None, gpus_per_worker: float | None) -> dict[str, Any]:
    """The scale-out group as the API names it; --workers and --gpus-per-worker only with --engine ray."""
    if engine.value != "ray":
        refuse(given(ctx, "workers", "gpus_per_worker"), "apply to --engine ray")
    if workers is not None and workers < 1:
        raise typer.BadParameter(f"{workers} is not a positive number", param_hint="--workers")
    if gpus_per_worker is not None and gpus_per_worker < 0:
        raise typer.BadParameter(f"{gpus_per_worker} is negative", param_hint="--gpus-per-worker")
    return {"engine": engine.value, "workers": workers, "gpus_per_worker": gpus_per_worker}


BUDGETS = typer.Option("4,16,all", "--budgets", help="labels per class to compare, comma-separated ('all': every one)")


@dataclass(frozen=True)
class DataOptions:
    """The data group as given on the command line: how a command reads its data."""

    text_column: str | None = None
    label_columns: tuple[str, ...] = ()
    strict: bool = False

    def load(self, source: str, *, modality: str | None = None, labels: bool = True) -> Dataset:
        """`source` as a Dataset; `labels=False` for a second source whose labels do not matter (a --target)."""
        from headstart.api import load_dataset

        return load_dataset(
            source,
            modality=modality,
            text_column=self.text_column,
            label_columns=list(self.label_columns) if labels and self.label_columns else None,
            strict=self.strict,
        )


def one_label_column(columns: list[str] | None, command: str) -> str | None:
    """The one --label-column of a command that looks at one task."""
    if columns and len(columns) > 1:
        raise NotApplicable(f"{command} looks at one --label-column at a time, not {len(columns)}")
    return columns[0] if columns else None


def distributed(devices: str, accelerator: str, precision: str | None, num_nodes: int, strategy: str) -> dict:
    """The distributed group as the training code names it."""
    return {
        "devices": parse_devices(devices),
        "accelerator": accelerator,
        "precision": precision,
        "num_nodes": num_nodes,
        "distributed_strategy": strategy,
    }


def given(ctx: typer.Context, *names: str) -> list[str]:
    """Those of the parameters `names` that the command line set (not left at their default)."""
    out = []
    for name in names:
        source = ctx.get_parameter_source(name)
        if source is not None and source.name not in ("DEFAULT", "DEFAULT_MAP"):
            out.append(name)
    return out


def flag(name: str) -> str:
    """A parameter's option as the user typed it: distributed_strategy -> --distributed-strategy."""
    return "--" + name.replace("_", "-")


class NotApplicable(typer.BadParameter):
    """Options given that do not apply: a usage error (exit 2) whose message is the sentence itself, without
    click's "Invalid value for ..." in front."""

    def format_message(self) -> str:
        return self.message


def refuse(names: list[str], why: str) -> None:
    """An error naming the options given that do not apply (exit 2, one line), as the API raises for its options."""
    if names:
        raise NotApplicable(f"{', '.join(flag(n) for n in names)} {why}")


def parse_devices(value: str | None) -> int | str | None:
    return int(value) if value is not None and value.isdigit() else value


def parse_settings(pairs: list[str] | None) -> dict[str, Any]:
    """`--set KEY=VALUE` pairs; VALUE is read as JSON when it parses (3, 0.1, true, null, ["a"]), else as text."""
    out = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--set")
        try:
            out[key.strip().replace("-", "_")] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip().replace("-", "_")] = value
    return out


def parse_budgets(text: str) -> list[int | None]:
    """`--budgets 4,16,all` as [4, 16, None]."""
    out: list[int | None] = []
    for part in (p.strip().lower() for p in text.split(",") if p.strip()):
        if part == "all":
            out.append(None)
        elif part.isdigit() and int(part) >= 1:
            out.append(int(part))
        else:
            raise typer.BadParameter(f"{part!r} is not a positive whole number or 'all'", param_hint="--budgets")
    if not out:
        raise typer.BadParameter("give at least one labels-per-class budget, e.g. 4,16,all", param_hint="--budgets")
    return out
