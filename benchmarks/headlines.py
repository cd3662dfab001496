"""BBC News headline generation: a MiniLM warm-started encoder-decoder against the same architecture from random
weights and against the lead words of each article, on the fixed test fifth of `samples:bbc-headlines`.

    python benchmarks/headlines.py [--sizes 200,all] [--seeds 0] [--epochs-200 3] [--epochs-all 1] [--threads 1]

For each training size and seed: `headstart.sequencing.fit_sequence` with backbone st:all-MiniLM-L6-v2 (both sides
of a transformers EncoderDecoderModel from the shipped MiniLM; cross-attention new), strategy full, which also
trains the random-init baseline with the very same settings and scores the lead-N-words baseline (N = the median
title length in words on the training part). A tenth of the training articles is the validation part that picks
the best epoch; every model is scored on the same 417 test articles (greedy decoding). CPU settings chosen so the
whole run fits in about 15-30 minutes on 2 shared cores: sources truncated to 64 word pieces, titles to 24, batch
16, lr 3e-4 with 10% warm-up then linear decay, one torch thread per process (on a loaded 2-core machine, two
OpenMP threads wait on each other: 0.35 vs 0.9 training pairs/s measured); sizes and seeds may run as separate
processes. Each run is merged into benchmarks/results/headlines.json as it ends (so a partial run keeps what it
measured), and a markdown table of ROUGE-L and chrF is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HEADSTART_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent
BACKBONE = "st:all-MiniLM-L6-v2"
SETTINGS = {"max_source_length": 64, "max_target_length": 24, "batch_size": 16, "lr": 3e-4, "max_length": 24}
MODELS = ("warm-started MiniLM", "same architecture, random init", "lead words")


def run_one(size: int | None, seed: int, epochs: int, settings: dict) -> dict:
    from headstart.sequencing import fit_sequence

    t0 = time.perf_counter()
    model = fit_sequence(
        "samples:bbc-headlines", task="seq2seq", backbone=BACKBONE, max_train=size, seed=seed, epochs=epochs,
        lr=settings["lr"], batch_size=settings["batch_size"], max_length=settings["max_length"],
        max_source_length=settings["max_source_length"], max_target_length=settings["max_target_length"],
        train_options={"eval_max": 40}, progress=False,
    )  # fmt: skip
    r = model.report
    lead = next(k for k in r["baselines"] if k.startswith("lead"))
    scores = {MODELS[0]: r["metrics"], MODELS[1]: r["baselines"]["same architecture, random init"],
              MODELS[2]: r["baselines"][lead]}  # fmt: skip
    return {
        "train_articles": size or "all", "seed": seed, "epochs": epochs, "settings": settings,
        "steps": result_steps(r["n_train"], settings["batch_size"], epochs), "n_train": r["n_train"],
        "n_val": r["n_val"],
        "n_test": r["n_test"], "lead_words": lead, "best_epoch": r["best_epoch"], "scores": scores,
        "history": r["history"], "examples": r["examples"][:3], "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip


def result_steps(n_train: int, batch_size: int, epochs: int) -> int:
    return max(1, n_train // batch_size) * epochs


def variant(run: dict) -> tuple:
    s = run.get("settings", SETTINGS)
    return (str(run["train_articles"]), run["epochs"], s["batch_size"], s["lr"])


def table(runs: list[dict]) -> str:
    lines = ["| training articles | epochs, batch, lr (steps) | seeds | model | ROUGE-L | chrF |"]
    lines.append("|---|---|---|---|---|---|")
    for key in dict.fromkeys(variant(r) for r in runs):
        group = [r for r in runs if variant(r) == key]
        how = f"{key[1]}, {key[2]}, {key[3]:g} ({group[0].get('steps', '?')})"
        for name in MODELS:
            cells = [_spread([r["scores"][name][m] for r in group]) for m in ("rougeL", "chrf")]
            seeds = ",".join(str(r["seed"]) for r in group)
            lines.append(f"| {key[0]} | {how} | {seeds} | {name} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def _spread(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} (range {min(values):.2f}-{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,all")
    parser.add_argument("--seeds", default="0")
    parser.add_argument("--epochs-200", type=int, default=3, help="epochs for sizes other than all")
    parser.add_argument("--epochs-all", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: best on a loaded shared machine)")
    parser.add_argument("--batch-size", type=int, default=SETTINGS["batch_size"])
    parser.add_argument("--lr", type=float, default=SETTINGS["lr"])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "headlines.json")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    for seed in [int(s) for s in args.seeds.split(",")]:
        for size in args.sizes.split(","):
            n = None if size == "all" else int(size)
            load = os.getloadavg()
            settings = {**SETTINGS, "batch_size": args.batch_size, "lr": args.lr}
            epochs = args.epochs_all if n is None else args.epochs_200
            run = {**run_one(n, seed, epochs, settings), "threads": args.threads,
                   "load_average": [load, os.getloadavg()]}  # fmt: skip
            print(table(merge(args.out, run)), flush=True)


def merge(path: Path, run: dict) -> list[dict]:
    """Add `run` to the results file (replacing one of the same size and seed); several processes may share it."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(Path(tempfile.gettempdir()) / f"{path.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = json.loads(path.read_text()) if path.is_file() else {}
        result.update({"backbone": BACKBONE, "settings": SETTINGS,
                       "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, shared with other jobs"})  # fmt: skip
        key = (*variant(run), run["seed"])
        runs = [r for r in result.get("runs", []) if (*variant(r), r["seed"]) != key] + [run]
        result["runs"] = sorted(runs, key=lambda r: (*variant(r), r["seed"]))
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(result, indent=2, default=str))
        os.replace(tmp, path)
    return result["runs"]


if __name__ == "__main__":
    main()
