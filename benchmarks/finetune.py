"""Fine-tuning benchmark: probe vs finetune vs gradual (vs LoRA for text) vs random init: accuracy, wall time.

    python benchmarks/finetune.py [--modality image|text|both] [--labels-per-class 10] [--epochs 5]

Image: samples:digits, headstart:efficientnet-lite0 at --size px (default 64). Text: samples:bbc-news,
st:all-MiniLM-L6-v2 with max_length --max-length (default 128). The same seeded split and the same labelled
training items for every method (`val_size=0`: no items held out for early stopping, so fine-tuning sees exactly
what the probe sees). `gradual` trains 1 frozen epoch + (epochs - 1), the same total as the others.

Then, if fastai is importable, the same architecture, data, size, batch and epochs with
`vision_learner(...).fine_tune()`, per-epoch time and accuracy beside headstart's `gradual` (its counterpart).
If fastai is not installed, the script says so and exits 0 after printing headstart's own figures.
Writes benchmarks/results/finetune.json. The machine may be shared: the load average is recorded with each row.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def fastai_rows(args: argparse.Namespace) -> list[dict[str, Any]] | None:
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

    ds = hs.load_dataset("samples:digits")
    train, test = split(ds, test_size=0.25, seed=args.seed, labels_per_class=args.labels_per_class)
    images = [Image.fromarray(np.asarray(i)).convert("RGB") for i in [*train.items, *test.items]]
    labels = [*train.labels, *test.labels]
    n_train = len(train)
    block = DataBlock(  # items are indices: fastai maps transforms over the elements of tuple items
        blocks=(ImageBlock, CategoryBlock),
        get_x=lambda i: images[i],
        get_y=lambda i: labels[i],
        splitter=lambda idx: (list(range(n_train)), list(range(n_train, len(idx)))),
        item_tfms=Resize(args.size, method="squish"),
        batch_tfms=Normalize.from_stats([0.5] * 3, [0.5] * 3),  # Lite0's normalisation, as headstart uses
    )
    dls = block.dataloaders(list(range(len(images))), bs=args.batch_size, num_workers=args.workers)
    lite0 = create_backbone("headstart:efficientnet-lite0").module
    rows = []
    for lr in [float(x) for x in args.fastai_lrs.split(",")]:
        # The same ImageNet weights headstart uses (headstart:efficientnet-lite0), loaded into fastai's timm body:
        # fastai's own `pretrained=True` would download timm's copy, and nothing may download here.
        torch.manual_seed(args.seed)
        learn = vision_learner(dls, "tf_efficientnet_lite0", metrics=accuracy, pretrained=False)
        body = learn.model[0].model
        missing, _ = body.load_state_dict(lite0.state_dict(), strict=False)
        assert not missing, f"fastai's body lacks {missing[:3]}"
        learn.freeze()
        timer = _TrainTimer()
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        with learn.no_bar(), learn.no_logging():
            learn.fine_tune(args.epochs - 1, base_lr=lr, freeze_epochs=1, cbs=[timer])
            acc = float(learn.validate()[1])
        wall = time.perf_counter() - t0
        # fastai validates on the test split after every epoch; headstart (val_size=0) does not, so the per-epoch
        # figure compared is the training part of each epoch alone (the callback times it)
        row = {"modality": "image", "method": f"fastai vision_learner.fine_tune(base_lr={lr:g})",
               "backbone": f"tf_efficientnet_lite0 (headstart:efficientnet-lite0 weights), {args.size} px",
               "accuracy": round(acc, 4), "wall_s": round(wall, 1),
               "epoch_s": round(sum(timer.seconds) / len(timer.seconds), 2), "n_train": len(train),
               "n_test": len(test), "load_before": round(load, 2), "device": str(learn.dls.device),
               "command": f"python benchmarks/finetune.py --modality image --fastai-lrs {lr:g}"}  # fmt: skip
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
    parser.add_argument("--fastai-lrs", default="0.002,0.01", help="fastai base_lr values (0.002 is its default)")
    parser.add_argument("--only", default="", help="comma-separated methods to run (default: all)")
    parser.add_argument("--cache", default="/tmp/headstart-bench-finetune-cache")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    rows = []
    for modality in ["image", "text"] if args.modality == "both" else [args.modality]:
        rows += headstart_rows(modality, args)
    comparison = fastai_rows(args) if args.modality in ("image", "both") else None
    if comparison is None:
        print("fastai is not installed (pip install fastai): the fastai comparison was skipped.")
    else:
        rows += comparison
        for row in comparison:
            print(json.dumps(row))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    machine = {"cpus": os.cpu_count(), "platform": platform.platform()}
    payload = {"machine": machine, "args": vars(args) | {"out": str(args.out)}, "rows": rows}
    args.out.write_text(json.dumps(payload, indent=2))


if __name__ == "__main__":
    main()
