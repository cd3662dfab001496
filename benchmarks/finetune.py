"""Fine-tuning benchmark: probe vs finetune vs gradual vs random init, accuracy and wall time, on real data.

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
    from fastai.vision.all import CategoryBlock, DataBlock, ImageBlock, Resize, accuracy, vision_learner
    from PIL import Image

    import headstart as hs
    from headstart.data import split

    ds = hs.load_dataset("samples:digits")
    train, test = split(ds, test_size=0.25, seed=args.seed, labels_per_class=args.labels_per_class)
    items = [(Image.fromarray(np.asarray(i)).convert("RGB"), lab, False) for i, lab in zip(train.items, train.labels)]
    items += [(Image.fromarray(np.asarray(i)).convert("RGB"), lab, True) for i, lab in zip(test.items, test.labels)]
    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock),
        get_x=lambda r: r[0],
        get_y=lambda r: r[1],
        splitter=lambda rows: ([i for i, r in enumerate(rows) if not r[2]], [i for i, r in enumerate(rows) if r[2]]),
        item_tfms=Resize(args.size),
    )
    dls = block.dataloaders(items, bs=args.batch_size, num_workers=0)
    learn = vision_learner(dls, "tf_efficientnet_lite0", metrics=accuracy, pretrained=True)
    t0 = time.perf_counter()
    learn.fine_tune(args.epochs - 1, freeze_epochs=1)
    wall = time.perf_counter() - t0
    acc = float(learn.validate()[1])
    return [{"modality": "image", "method": "fastai vision_learner.fine_tune", "accuracy": round(acc, 4),
             "wall_s": round(wall, 1), "epoch_s": round(wall / args.epochs, 2)}]  # fmt: skip


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
