"""The two checks of the scale-out work, with their figures: run from the repository root.

    python benchmarks/scale_checks.py [--out PATH]

1. Equality: 300 digits (PNG files) embedded by `headstart:efficientnet-lite0?size=64` in one process without a
   cache, then with `engine="ray"` (2 workers) and the feature cache on an S3 server (moto's, on loopback): the ids in
   the same order, the largest difference between the two feature matrices (float32 rounding: Ray's batches are cut
   along its blocks and its actors run on fewer threads, so the sums inside a layer may run in another order), the
   cache's shards after the Ray run and after a second Ray run (a cache hit: no new shard).
2. A worker killed mid-job: the same items through a backbone whose first forward pass kills its process
   (`tests/scale/backbones.py: DiesOnce`, `os._exit(1)`), one Ray actor, written as Parquet parts: the process that
   died, every id exactly once, the largest difference to the single-process features.

Writes benchmarks/results/scale_checks.json (or --out). About 2 minutes on 2 busy cores.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HEADSTART_OFFLINE", "1")
ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))  # tests.conftest and tests.scale.backbones, for the data and the dying backbone
SPEC = "headstart:efficientnet-lite0?size=64"


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def digits_folder(root: Path, per_class: int) -> Path:
    from PIL import Image

    from tests.conftest import digit_images

    images, labels = digit_images(per_class)
    for i, (image, label) in enumerate(zip(images, labels, strict=True)):
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(image).save(root / label / f"{i:04d}.png")
    return root


def s3_server() -> tuple[object, str]:
    import socket

    from moto.server import ThreadedMotoServer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    os.environ.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_DEFAULT_REGION="us-east-1")
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    import s3fs

    s3fs.S3FileSystem().mkdir("checks")
    return server, "s3://checks/cache"


def equality(folder: Path, work: Path) -> dict:
    import numpy as np

    import headstart.api as api
    from headstart.storage import open_storage

    here = api.embed(str(folder), backbone=SPEC, out=work / "here.npy", cache=False, progress=False)
    server, cache = s3_server()
    os.environ["HEADSTART_CACHE"] = cache
    start = time.perf_counter()
    on_ray = api.embed(str(folder), backbone=SPEC, out=work / "ray.npy", engine="ray", workers=2, progress=False)
    ray_s = time.perf_counter() - start
    store = open_storage(cache)
    (key,) = store.list("features")
    shards_after_ray = len(store.list(key, ".json"))
    start = time.perf_counter()
    again = api.embed(str(folder), backbone=SPEC, engine="ray", workers=2, progress=False)
    hit_s = time.perf_counter() - start
    ids = [(work / f"{n}.ids.csv").read_text().splitlines() for n in ("here", "ray")]
    shards_after_second_run = len(store.list(key, ".json"))
    server.stop()
    return {
        "items": len(here),
        "dim": int(here.shape[1]),
        "same_ids_same_order": ids[0] == ids[1],
        "max_abs_diff": float(np.abs(on_ray - here).max()),
        "max_abs_value": float(np.abs(here).max()),
        "allclose_rtol1e-5_atol1e-6": bool(np.allclose(on_ray, here, rtol=1e-5, atol=1e-6)),
        "allclose_rtol1e-4_atol1e-4": bool(np.allclose(on_ray, here, rtol=1e-4, atol=1e-4)),
        "max_row_relative_diff": float((np.linalg.norm(on_ray - here, axis=1) / np.linalg.norm(here, axis=1)).max()),
        "ray_run_s": ray_s,
        "s3_shards_after_ray_run": shards_after_ray,
        "s3_shards_after_second_run": shards_after_second_run,
        "second_run_s": hit_s,
        "second_run_equal": bool(np.array_equal(again, on_ray)),
    }


def killed_worker(folder: Path, work: Path) -> dict:
    import numpy as np

    from headstart.data import load_data
    from headstart.features import extract_features
    from headstart.features.engine import Engine
    from headstart.features.parts import read_parts, write_parts
    from tests.scale.backbones import DiesOnce

    ds = load_data(str(folder))
    marker = work / "died"
    dying = DiesOnce(SPEC, str(marker))
    ray = Engine("ray", workers=1)

    def features_for(rows: slice) -> np.ndarray:
        part = ds.subset(range(rows.start, rows.stop))
        return extract_features(dying, part, cache=False, progress=False, engine=ray)

    start = time.perf_counter()
    done = write_parts(work / "parts", ds.where, ds.content_hashes(), dying.cache_key, features_for, rows_per_part=100)
    seconds = time.perf_counter() - start
    ids, vectors = read_parts(work / "parts")
    here = extract_features(dying.inner, ds, cache=False, progress=False)
    return {
        "items": len(ds),
        "parts": done["written"],
        "died_pid": int(marker.read_text()) if marker.exists() else None,
        "driver_pid": os.getpid(),
        "rows_out": len(ids),
        "distinct_ids": len(set(ids)),
        "ids_in_input_order": ids == list(ds.where),
        "max_abs_diff_to_single": float(np.abs(vectors - here).max()),
        "seconds": seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "scale_checks.json")
    args = parser.parse_args()
    import ray

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ["HEADSTART_CACHE"] = str(work / "local-cache")
        folder = digits_folder(work / "digits", 30)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        result = {"equality": equality(folder, work)}
        log(f"equality: {result['equality']}")
        result["killed_worker"] = killed_worker(folder, work)
        log(f"killed worker: {result['killed_worker']}")
        ray.shutdown()
    result["load_average_after"] = os.getloadavg()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
