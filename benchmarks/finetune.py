"""Fine-tuning benchmark: probe vs finetune vs gradual (vs LoRA for text) vs random init: accuracy, wall time.

    python benchmarks/finetune.py [--modality image|text|both] [--labels-per-class 10] [--epochs 5]
    python benchmarks/finetune.py --fair --fair-data digits --size 64 --labels-per-class 20 --seeds 0,1,2

Image: samples:digits, headstart:efficientnet-lite0 at --size px (default 64). Text: samples:bbc-news,
st:all-MiniLM-L6-v2 with max_length --max-length (default 128). The same seeded split and the same labelled
training items for every method (`val_size=0`: no items held out for early stopping, so fine-tuning sees exactly
what the probe sees). `gradual` trains 1 frozen epoch + (epochs - 1), the same total as the others.

Then, if fastai is importable, the fair comparison (`--fair` runs it alone; `fair_rows`): fastai with its own
documented recipe (`vision_learner`, `lr_find()`'s valley as the learning rate, `fine_tune(E)` for each E of
--fastai-epochs, every E reported) beside headstart's default `gradual`, same data (--fair-data digits|solar), same
size, same labelled items and test split, per seed; accuracy and wall time of both, from the same run, go to
benchmarks/results/finetune_fastai.json. If fastai is not installed, the script says so and exits 0.
Writes benchmarks/results/finetune.json. The machine may be shared: the load average is recorded with each row.
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

RESULTS = Path(__file__).parent / "results" / "finetune.json"


def headstart_rows(modality: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    import headstart as hs

    if modality == "image":
        data = "samples:digits"
        pretrained = f"headstart:efficientnet-lite0?size={args.size}"
        random_init = f"headstart:efficientnet-lite0?init=random&size={args.size}"
    else:
        data = "samples:bbc-news"
        pretrained = f"st:all-MiniLM-L6-v2?max_length={args.max_length}"
        random_init = f"st:all-MiniLM-L6-v2?init=random&max_length={args.max_length}"
    common = dict(labels_per_class=args.labels_per_class, seed=args.seed, batch_size=args.batch_size,
                  baseline=False, progress=False)  # fmt: skip
    tuning = dict(val_size=0.0, num_workers=args.workers)
    if modality == "image":
        tuning["hflip"] = False  # a mirrored digit is another symbol
    runs = [
        ("probe", pretrained, dict(strategy="probe")),
        ("finetune", pretrained, dict(strategy="finetune", epochs=args.epochs, **tuning)),
        ("gradual", pretrained, dict(strategy="gradual", epochs=args.epochs - 1, freeze_epochs=1, **tuning)),
        ("random-init finetune", random_init, dict(strategy="finetune", epochs=args.epochs, **tuning)),
    ]
    if modality == "text":  # LoRA (PEFT) adapts a transformer's linear layers
        runs.insert(3, ("lora", pretrained, dict(strategy="lora", epochs=args.epochs, **tuning)))
    rows = []
    for name, backbone, options in runs:
        if args.only and name not in args.only.split(","):
            continue
        os.environ["HEADSTART_CACHE"] = str(Path(args.cache) / name.replace(" ", "-"))  # probe: no warm cache
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        model = hs.fit(data, backbone=backbone, **common, **options)
        wall = time.perf_counter() - t0
        history = model.report.get("finetune", {}).get("history", [])
        row = {
            "modality": modality,
            "method": name,
            "backbone": backbone,
            "accuracy": round(model.metrics["label"]["accuracy"], 4),
            "macro_f1": round(model.metrics["label"]["macro_f1"], 4),
            "wall_s": round(wall, 1),
            "epoch_s": round(sum(r["seconds"] for r in history) / len(history), 2) if history else None,
            "n_train": model.data_info["n_train"],
            "n_test": model.data_info["n_test"],
            "load_before": round(load, 2),
            "command": _command(data, backbone, options, args),
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    return rows


def _command(data: str, backbone: str, options: dict[str, Any], args: argparse.Namespace) -> str:
    parts = [
        f"headstart fit {data} -b '{backbone}' -o runs/x --labels-per-class {args.labels_per_class}",
        f"--batch-size {args.batch_size} --seed {args.seed} --no-baseline --strategy {options['strategy']}",
    ]
    if options["strategy"] != "probe":
        parts.append(f"--epochs {options['epochs']} --val-size 0")
        if "freeze_epochs" in options:
            parts.append("--set freeze_epochs=1")
        if "hflip" in options:
            parts.append("--set hflip=false")
    return " ".join(parts)


FAIR_DATA = {"digits": "samples:digits", "solar": "samples:solar-cells"}


def fair_rows(args: argparse.Namespace) -> list[dict[str, Any]] | None:
    """fastai with its own documented recipe beside headstart's defaults (`gradual`, `finetune`) on the same data,
    size and labelled items.

    fastai: `vision_learner(dls, arch)`, `learn.lr_find()` (its `valley` suggestion) as the learning rate, then
    `learn.fine_tune(E)` for each E of --fastai-epochs (a fresh learner each time; every E is reported, none is
    picked by its test score). headstart: `hs.fit(..., strategy="gradual" | "finetune")` with its defaults (the
    schedule sized to the data: at least 100 optimizer steps in 5-50 epochs, a validation part only where it holds
    100 items; `schedule` in each row says which). Both are scored on the same
    test split, and the wall time of each covers everything from the labelled items to the test score.
    """
    try:
        import fastai  # noqa: F401
    except ImportError:
        return None
    import numpy as np
    import torch
    from fastai.vision.all import CategoryBlock, DataBlock, ImageBlock, Normalize, Resize, accuracy, vision_learner
    from PIL import Image

    import headstart as hs
    from headstart.backbones import create_backbone
    from headstart.data import split

    source = FAIR_DATA[args.fair_data]
    size = args.size
    backbone = f"headstart:efficientnet-lite0?size={size}"
    rows = []
    for seed in [int(s) for s in args.seeds.split(",")]:
        extra = {"hflip": False} if args.fair_data == "digits" else {}
        os.environ["HEADSTART_CACHE"] = str(Path(args.cache) / "fair")
        for strategy in ("gradual", "finetune"):
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            model = hs.fit(source, backbone=backbone, strategy=strategy, labels_per_class=args.labels_per_class,
                           seed=seed, refit=False, baseline=False, progress=False, num_workers=args.workers,
                           **extra)  # fmt: skip
            wall = time.perf_counter() - t0
            history = model.report.get("finetune", {}).get("history", [])
            row = {"data": source, "method": f"headstart fit --strategy {strategy} (defaults)", "seed": seed,
                   "backbone": backbone, "accuracy": round(model.metrics["label"]["accuracy"], 4),
                   "wall_s": round(wall, 1), "epochs": len(history), "n_train": model.data_info["n_train"],
                   "n_test": model.data_info["n_test"], "load_before": round(load, 2),
                   "schedule": model.report.get("finetune", {}).get("schedule"),
                   "command": f"headstart fit {source} -b '{backbone}' -o runs/x --strategy {strategy} "
                              f"--labels-per-class {args.labels_per_class} --seed {seed} --no-baseline --no-refit"
                              + (" --set hflip=false" if extra else "")}  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)

        ds = hs.load_dataset(source)
        train, test = split(ds, test_size=0.25, seed=seed, labels_per_class=args.labels_per_class)
        assert len(train) == row["n_train"] and len(test) == row["n_test"], "not the split headstart scored on"

        def load_image(item: Any) -> Image.Image:
            return (Image.open(item) if isinstance(item, (str, Path)) else Image.fromarray(np.asarray(item))).convert(
                "RGB"
            )

        for epochs in [int(e) for e in args.fastai_epochs.split(",")]:
            load = os.getloadavg()[0]
            t0 = time.perf_counter()
            images = [load_image(i) for i in [*train.items, *test.items]]
            labels = [*train.labels, *test.labels]
            n_train = len(train)
            block = DataBlock(  # items are indices: fastai maps transforms over the elements of tuple items
                blocks=(ImageBlock, CategoryBlock),
                get_x=lambda i, images=images: images[i],
                get_y=lambda i, labels=labels: labels[i],
                splitter=lambda idx, n=n_train: (list(range(n)), list(range(n, len(idx)))),
                item_tfms=Resize(size, method="squish"),
                batch_tfms=Normalize.from_stats([0.5] * 3, [0.5] * 3),  # Lite0's normalisation, as headstart uses
            )
            bs = min(32, n_train // 2)  # fastai drops the last partial batch in training: keep at least 2 batches
            dls = block.dataloaders(list(range(len(images))), bs=bs, num_workers=args.workers)
            # The same ImageNet weights headstart uses (headstart:efficientnet-lite0), loaded into fastai's timm
            # body: fastai's own `pretrained=True` would download timm's copy, and nothing may download here.
            torch.manual_seed(seed)
            learn = vision_learner(dls, "tf_efficientnet_lite0", metrics=accuracy, pretrained=False)
            missing, _ = learn.model[0].model.load_state_dict(
                create_backbone("headstart:efficientnet-lite0").module.state_dict(), strict=False
            )
            assert not missing, f"fastai's body lacks {missing[:3]}"
            learn.freeze()
            with learn.no_bar(), learn.no_logging():
                lr = float(learn.lr_find(show_plot=False).valley)
                learn.fine_tune(epochs, base_lr=lr)
                acc = float(learn.validate()[1])
            wall = time.perf_counter() - t0
            row = {"data": source, "method": f"fastai lr_find + fine_tune({epochs})", "seed": seed,
                   "backbone": f"tf_efficientnet_lite0 (headstart:efficientnet-lite0 weights), {size} px",
                   "accuracy": round(acc, 4), "wall_s": round(wall, 1), "epochs": epochs + 1, "lr": lr,
                   "batch_size": bs, "n_train": len(train), "n_test": len(test), "load_before": round(load, 2),
                   "device": str(learn.dls.device),
                   "command": f"python benchmarks/finetune.py --fair --fair-data {args.fair_data} --size {size} "
                   f"--labels-per-class {args.labels_per_class} --seeds {seed} --fastai-epochs {epochs}"}  # fmt: skip
            print(json.dumps(row), flush=True)
            rows.append(row)
    return rows


def _train_timer_class() -> type:
    from fastai.callback.core import Callback

    class TrainTimer(Callback):
        """Seconds spent training (not validating) in each epoch."""

        order = -100

        def __init__(self) -> None:
            self.seconds: list[float] = []  # over both fits of fine_tune (frozen, then unfrozen)

        def before_epoch(self) -> None:
            self._t0 = time.perf_counter()

        def before_validate(self) -> None:
            self.seconds.append(time.perf_counter() - self._t0)

    return TrainTimer


def _TrainTimer() -> Any:  # noqa: N802 - builds the fastai callback lazily (fastai is optional)
    return _train_timer_class()()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--modality", choices=["image", "text", "both"], default="both")
    parser.add_argument("--labels-per-class", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--only", default="", help="comma-separated methods to run (default: all)")
    parser.add_argument("--fair", action="store_true", help="only the fastai comparison (its own recipe)")
    parser.add_argument("--fair-data", choices=sorted(FAIR_DATA), default="digits")
    parser.add_argument("--seeds", default="0", help="--fair: comma-separated seeds")
    parser.add_argument("--fastai-epochs", default="5,10,20", help="--fair: fine_tune epochs to try, each reported")
    parser.add_argument("--cache", default="/tmp/headstart-bench-finetune-cache")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.out is None:
        args.out = RESULTS.with_name("finetune_fastai.json") if args.fair else RESULTS

    rows = []
    if not args.fair:
        for modality in ["image", "text"] if args.modality == "both" else [args.modality]:
            rows += headstart_rows(modality, args)
    comparison = fair_rows(args) if args.fair or args.modality in ("image", "both") else None
    if comparison is None:
        print("fastai is not installed (pip install fastai): the fastai comparison was skipped.")
    else:
        rows += comparison
        print(f"\n{'method':46} {'accuracy (mean ± std)':>22} {'wall s':>7}  seeds")
        for method in dict.fromkeys(r["method"] for r in comparison):
            group = [r for r in comparison if r["method"] == method]
            accs = [r["accuracy"] for r in group]
            std = statistics.stdev(accs) if len(accs) > 1 else 0.0
            wall = statistics.mean(r["wall_s"] for r in group)
            acc = f"{statistics.mean(accs):.3f} ± {std:.3f}"
            print(f"{method:46} {acc:>22} {wall:>7.1f}  {[r['seed'] for r in group]}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    payload = {"machine": machine, "args": vars(args) | {"out": str(args.out)}, "rows": rows}
    args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
