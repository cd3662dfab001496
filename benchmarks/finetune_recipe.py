"""Which fine-tuning recipe pays off at 20 labels per class: probe vs default gradual/finetune vs candidate recipes.

    python benchmarks/finetune_recipe.py [--data solar,digits,fashion] [--seeds 0,1,2] [--recipes probe,finetune,...]

Data: `samples:solar-cells` (ELPV electroluminescence photos, 4 classes, grayscale 300 px) with
`headstart:efficientnet-lite0?size=--solar-size` (default 128), `samples:digits` with `?size=64`
(`hflip=False` for every digits run: a mirrored digit is another symbol), and `samples:fashion-mnist` (28 px product
photos, 10,000 of them, so 2,500 test items) with `?size=64`. Every method of one seed trains on the
same labelled items (`labels_per_class`, the same seeded split) and is scored on the same test split
(`test_size=0.25`, i.e. 656 solar cells, 450 digits); `refit=False` (scores are unchanged by the refit).
Recipes are named in RECIPES below: `gradual` / `finetune` are the library's defaults as they stand when the script
runs (a recipe only lists options it changes). Prints accuracy mean ± std over the seeds, macro F1 and the wall time
per run; writes benchmarks/results/finetune_recipe.json (every run, plus the summary). The machine may be shared: the
load average is recorded with each run, and wall times on a loaded machine say little.

Caveat (headstart as of this script): `hs.fit(..., refit=False)` with a fine-tuning strategy and `val_size > 0`
still retrains on every labelled item after scoring (`finetune/run.py`: `final_ds` is the whole training part when
the partition does not refit, which is larger than the items minus validation), so the wall time of such a run
includes a second training; its score is the first model's. `n_train` in each row shows it (80 vs 68 on solar).

First figures (2 shared CPU cores, load 4-14; 20 labels per class; seeds 0-2 where a ± is given, else seed 0):
solar cells at 128 px, no fine-tuning recipe tried beat the probe (probe 0.514 ± 0.040, default gradual
0.431 ± 0.033, default finetune 0.375, 15 epochs at backbone_lr_mult=0.5: 0.334, a gentle 10 epochs at lr 1e-3
with all 80 items: 0.377); digits at 64 px, the 15-epoch recipe did (0.904 against the probe's 0.887 at seed 0,
0.879 ± 0.015 over seeds 0-2; default gradual 0.876). It holds on one set only: the defaults were left as they are.

Since then the schedule is sized to the data (at least 100 optimizer steps in 5-50 epochs; no validation part below
100 items), on an idle machine, seeds 0-2: digits probe 0.879 ± 0.015, finetune (sized) 0.939 ± 0.005, finetune-5ep
0.896 ± 0.024; solar cells at 128 px probe 0.514 ± 0.040 (balanced 0.452), finetune 0.458 ± 0.034 (balanced 0.463),
finetune-5ep 0.422 ± 0.043 (balanced 0.428). Those "finetune" rows are now named finetune-v1.

2026-12-01: with Fashion-MNIST's product photos added (64 px), seed 0 of the candidates ft-300steps,
ft-300steps-strong, ft-bb03, ft-300steps-bb03 and ft-300steps-bb1 on all three sets: more steps and a larger
backbone learning rate each helped on fashion and digits, strong augmentation hurt digits, 1.0 x was no better than
0.3 x; solar moved within its noise. 300 steps at 0.3 x became the image default, then ran as "finetune" on seeds
0-2 (the choice was made on these sets' seed 0: the other seeds confirm it, they are not an untouched test).

2026-12-02: ft-600steps, ft-ls01 and ft-l2sp on seed 0; ft-l2sp, the only one ahead on all three sets there, on seeds
1 and 2 too, where it fell back to the default's level or below (digits 0.964 against 0.973): none adopted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).parent / "results" / "finetune_recipe.json"

# name -> fit options beyond the defaults (strategy always given)
RECIPES: dict[str, dict[str, Any]] = {
    "probe": {"strategy": "probe"},
    "gradual": {"strategy": "gradual"},
    "finetune": {"strategy": "finetune"},
    # the first sized schedule (100 steps in 5-50 epochs, the backbone at 0.1 x the head's lr), default until
    # 2026-12-01; its rows were run as "finetune" when that was the default
    "finetune-v1": {"strategy": "finetune", "steps": 100, "max_epochs": 50, "backbone_lr_mult": 0.1},
    # the defaults before the schedule was sized to the data (5 epochs, 15% held out to pick the epoch)
    "finetune-5ep": {"strategy": "finetune", "epochs": 5, "val_size": 0.15},
    "gradual-5ep": {"strategy": "gradual", "epochs": 5, "val_size": 0.15},
    # candidates
    "ft-e15-bb05": {"strategy": "finetune", "epochs": 15, "backbone_lr_mult": 0.5},
    "gr-e15-m10": {"strategy": "gradual", "epochs": 15, "lr_mult": 10},
    "ft-e10-gentle": {"strategy": "finetune", "epochs": 10, "lr": 1e-3, "backbone_lr_mult": 0.1, "val_size": 0.0},
    # "steps": that many optimizer steps (epochs = steps / full batches of the labelled items, no validation); the
    # ft-300steps rows were run with the short last batch counted (43 epochs for 200 items, not 50)
    "ft-300steps": {"strategy": "finetune", "steps": 300},
    "ft-300steps-strong": {"strategy": "finetune", "steps": 300, "augment": "strong"},
    "ft-bb03": {"strategy": "finetune", "backbone_lr_mult": 0.3},
    "ft-300steps-bb03": {"strategy": "finetune", "steps": 300, "backbone_lr_mult": 0.3},
    "ft-300steps-bb1": {"strategy": "finetune", "steps": 300, "backbone_lr_mult": 1.0},
    # 2026-12-02 candidates on top of the present default (300 steps, 0.3 x): twice the steps; label smoothing 0.1;
    # L2-SP towards the pretrained weights (Li et al. 2018) at alpha 0.01
    "ft-600steps": {"strategy": "finetune", "steps": 600},
    "ft-ls01": {"strategy": "finetune", "label_smoothing": 0.1},
    "ft-l2sp": {"strategy": "finetune", "l2sp": 0.01},
}

DATA = {
    "solar": ("samples:solar-cells", "headstart:efficientnet-lite0?size={solar_size}", {}),
    "digits": ("samples:digits", "headstart:efficientnet-lite0?size=64", {"hflip": False}),
    # Zalando's 28 px product photos: the digits' 64 px rule for small images; flips keep a garment a garment
    "fashion": ("samples:fashion-mnist", "headstart:efficientnet-lite0?size=64", {}),
}


def run_one(data_key: str, recipe: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    import headstart as hs

    source, backbone, data_options = DATA[data_key]
    backbone = backbone.format(solar_size=args.solar_size)
    options = dict(RECIPES[recipe])
    steps, max_epochs = options.pop("steps", None), options.pop("max_epochs", 100)
    if steps is not None:  # labels_per_class x classes items, the short last batch dropped, no validation part
        n_classes = len(set(hs.load_dataset(source).labels))
        batches = max(1, args.labels_per_class * n_classes // args.batch_size)
        options |= {"epochs": min(max_epochs, max(5, -(-steps // batches))), "val_size": 0.0}
    if options["strategy"] != "probe":
        options = {**data_options, "num_workers": args.workers, **options}
    os.environ["HEADSTART_CACHE"] = str(Path(args.cache))
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    model = hs.fit(source, backbone=backbone, labels_per_class=args.labels_per_class, seed=seed, refit=False,
                   baseline=False, progress=False, batch_size=args.batch_size, **options)  # fmt: skip
    wall = time.perf_counter() - t0
    history = model.report.get("finetune", {}).get("history", [])
    return {
        "data": source,
        "backbone": backbone,
        "recipe": recipe,
        "options": options,
        "seed": seed,
        "accuracy": round(model.metrics["label"]["accuracy"], 4),
        "balanced_accuracy": round(model.metrics["label"]["balanced_accuracy"], 4),
        "macro_f1": round(model.metrics["label"]["macro_f1"], 4),
        "wall_s": round(wall, 1),
        "epochs_run": len(history),
        "n_train": model.data_info["n_train"],
        "n_test": model.data_info["n_test"],
        "load_before": round(load, 2),
    }


def summarise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    keys = sorted({(r["data"], r["recipe"]) for r in rows}, key=lambda k: (k[0], list(RECIPES).index(k[1])))
    for data, recipe in keys:
        group = [r for r in rows if r["data"] == data and r["recipe"] == recipe]
        accs = [r["accuracy"] for r in group]
        f1s = [r["macro_f1"] for r in group if r.get("macro_f1") is not None]
        bals = [r["balanced_accuracy"] for r in group if r.get("balanced_accuracy") is not None]
        out.append({
            "data": data, "recipe": recipe, "seeds": [r["seed"] for r in group],
            "accuracy_mean": round(statistics.mean(accs), 4),
            "accuracy_std": round(statistics.stdev(accs), 4) if len(accs) > 1 else 0.0,
            "macro_f1_mean": round(statistics.mean(f1s), 4) if f1s else None,
            "balanced_accuracy_mean": round(statistics.mean(bals), 4) if bals else None,
            "balanced_accuracy_std": round(statistics.stdev(bals), 4) if len(bals) > 1 else None,
            "wall_s_mean": round(statistics.mean(r["wall_s"] for r in group), 1),
        })  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="fashion,digits,solar")
    parser.add_argument("--recipes", default="probe,finetune,gradual,finetune-5ep")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--labels-per-class", type=int, default=20)
    parser.add_argument("--solar-size", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--cache", default="/tmp/headstart-bench-recipe-cache")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--append", action="store_true", help="add to the rows already in --out")
    args = parser.parse_args()

    rows: list[dict[str, Any]] = []
    if args.append and args.out.is_file():
        rows = json.loads(args.out.read_text())["rows"]
    for data_key in args.data.split(","):
        for seed in [int(s) for s in args.seeds.split(",")]:
            for recipe in args.recipes.split(","):
                row = run_one(data_key, recipe, seed, args)
                rows = [r for r in rows if (r["data"], r["recipe"], r["seed"]) != (row["data"], recipe, seed)]
                rows.append(row)
                print(json.dumps(row), flush=True)
                _write(args, rows)
    print_table(rows)


def print_table(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'data':22} {'recipe':16} {'accuracy (mean ± std)':>22} {'balanced acc.':>16} {'macro F1':>9} "
          f"{'wall s':>7}  seeds")  # fmt: skip
    for s in summarise(rows):
        acc = f"{s['accuracy_mean']:.3f} ± {s['accuracy_std']:.3f}"
        f1 = s["macro_f1_mean"] if s["macro_f1_mean"] is not None else float("nan")
        bal = "-" if s["balanced_accuracy_mean"] is None else f"{s['balanced_accuracy_mean']:.3f}"
        if s["balanced_accuracy_std"] is not None:
            bal += f" ± {s['balanced_accuracy_std']:.3f}"
        line = f"{s['data']:22} {s['recipe']:16} {acc:>22} {bal:>16} {f1:>9.3f} {s['wall_s_mean']:>7}"
        print(f"{line}  {s['seeds']}")


def _write(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    payload = {"machine": machine, "args": vars(args) | {"out": str(args.out)}, "recipes": RECIPES, "rows": rows,
               "summary": summarise(rows)}  # fmt: skip
    args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
