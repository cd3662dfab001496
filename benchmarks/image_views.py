"""Does a frozen-feature image probe gain from augmented training views, or from flipping at test time?

For each image set, label budget and seed (the quality benchmark's seeded 25% splits): the tuned linear head on the
training images' features (the present probe), then the same head trained on those rows plus the features of
augmented copies of each training image (a horizontal flip; a flip and two random resized crops), its
cross-validation keeping each image and its copies in one fold, as the audio probe does. Each head is scored on the
test images as they are, and with test-time flipping (the mean of the class probabilities of the image and its
mirror). Mean +- std over seeds, gain over the plain probe.

    python benchmarks/image_views.py                       # fashion, solar, digits at 4 and 16 per class, 3 seeds
    python benchmarks/image_views.py --sets fashion --budgets 20 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).parent / "results" / "image_views.json"
SETS = {
    "fashion": "samples:fashion-mnist",
    "solar": "samples:solar-cells",
    "digits": "samples:digits",
}
SPEC = "headstart:efficientnet-lite0"
CROP_SCALE = (0.5, 1.0)


def flipped(item: Any) -> np.ndarray:
    from headstart.data import load_image

    return np.ascontiguousarray(np.asarray(load_image(item))[:, ::-1])


def cropped(item: Any, seed: int) -> np.ndarray:
    """A random resized crop (CROP_SCALE of the area, back to the image's size), mirrored half the time."""
    import torch
    from torchvision.transforms import v2

    from headstart.data import load_image

    image = load_image(item)
    torch.manual_seed(seed)
    out = v2.Compose([v2.RandomResizedCrop(image.size[::-1], scale=CROP_SCALE), v2.RandomHorizontalFlip()])(image)
    return np.ascontiguousarray(np.asarray(out))


def features_of(bb: Any, arrays: list[np.ndarray]) -> np.ndarray:
    from headstart.data import Dataset
    from headstart.features import extract_features

    ds = Dataset(
        modality="image",
        items=arrays,
        targets={"label": ["x"] * len(arrays)},
        where=[f"view {i}" for i in range(len(arrays))],
        source="views",
    )
    return extract_features(bb, ds, progress=False)


def run(name: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    from quality import pool, seeded_splits

    from headstart.backbones import create_backbone
    from headstart.features import extract_features
    from headstart.heads import make_head

    ds = pool(SETS[name], args.max_items)
    bb = create_backbone(SPEC)
    x_all = extract_features(bb, ds, progress=True)
    index = {h: i for i, h in enumerate(ds.content_hashes())}
    rows = []
    for budget, seed, train, test, x_train, x_test in seeded_splits(ds, x_all, args.budgets, args.seeds):
        tr = np.asarray([index[h] for h in train.content_hashes()])
        te = np.asarray([index[h] for h in test.content_hashes()])
        t0 = time.perf_counter()
        flips = features_of(bb, [flipped(ds.items[i]) for i in tr])
        crops = features_of(bb, [cropped(ds.items[i], seed * 100_003 + int(i) * 2 + k) for k in (0, 1) for i in tr])
        test_flips = features_of(bb, [flipped(ds.items[i]) for i in te])
        views_s = time.perf_counter() - t0
        y, yte = np.asarray(train.labels), np.asarray(test.labels)
        n = len(tr)
        recipes = {
            "probe": (x_train, y, None),
            "flip": (np.concatenate([x_train, flips]), np.tile(y, 2), np.tile(np.arange(n), 2)),
            "flip+crops": (np.concatenate([x_train, flips, crops]), np.tile(y, 4), np.tile(np.arange(n), 4)),
        }
        row: dict[str, Any] = {"set": name, "budget": budget, "seed": seed, "n_train": n, "n_test": len(te)}
        row["views_s"] = round(views_s, 1)
        for recipe, (x, yy, groups) in recipes.items():
            t = time.perf_counter()
            head = make_head("linear", random_state=seed).fit(x, yy, groups=groups)
            proba = head.predict_proba(x_test)
            row[recipe] = float(np.mean(head.classes_[proba.argmax(1)] == yte))
            both = (proba + head.predict_proba(test_flips)) / 2
            row[f"{recipe}+tta"] = float(np.mean(head.classes_[both.argmax(1)] == yte))
            row[f"{recipe}_s"] = round(time.perf_counter() - t, 2)
            row[f"{recipe}_C"] = head.chosen_.get("C")
        print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
        rows.append(row)
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    methods = ["probe", "probe+tta", "flip", "flip+tta", "flip+crops", "flip+crops+tta"]
    for key in sorted({(r["set"], r["budget"]) for r in rows}):
        group = [r for r in rows if (r["set"], r["budget"]) == key]
        entry: dict[str, Any] = {"set": key[0], "labels_per_class": key[1], "seeds": len(group)}
        for m in methods:
            acc = np.asarray([r[m] for r in group])
            gain = acc - np.asarray([r["probe"] for r in group])
            entry[m] = f"{acc.mean():.3f} ± {acc.std():.3f}"
            if m != "probe":
                entry[f"{m} gain"] = f"{gain.mean():+.3f} ± {gain.std():.3f}"
        out.append(entry)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--budgets", default="4,16")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--max-items", type=int, default=3000)
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    rows = []
    for name in args.sets.split(","):
        rows += run(name, args)
    result = {"command": "python benchmarks/image_views.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items() if k != "out"
    ), "backbone": SPEC, "rows": rows, "summary": summary(rows)}  # fmt: skip
    for entry in result["summary"]:
        print(json.dumps(entry, ensure_ascii=False))
    Path(args.out).write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
