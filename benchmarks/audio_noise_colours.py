"""Audio benchmark: is the probe robust to noise it did not train on? Spoken digits, held-out voices, test noise
white, pink and brown at 10 dB and 0 dB SNR.

    python benchmarks/audio_noise_colours.py [--seeds 0,1,2] [--out benchmarks/results/audio_noise_colours.json]

On the group-wise split of samples:spoken-digits (test voices never heard in training; noise on the test clips
only), the speech-embedding probe as `fit` trains it (`fit_heads`: a tuned linear head on the clips' frozen features
and on those of two noisy copies of each clip) with the copies' noise drawn three ways: white only (the default
until this benchmark), and white, pink or brown at random (`--views` names the variants); beside the probe without
copies and log-mel + logistic regression. White test noise alone would flatter copies made with white noise: the
other colours put most of their power where speech has its own (pink: -3 dB per octave, brown: -6 dB), as much
room, traffic and wind noise does, and babble (three other clips of the test set, other voices saying other words,
summed) is competing speech, the hardest. `--views white+babble` makes half the copies babble of other training
clips. Accuracy per condition, mean ± std over the seeds; a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("HEADSTART_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent
SPEC = "headstart:speech-embedding"
CONDITIONS = [("clean", None, "white")] + [
    (f"{colour} {snr:g} dB", snr, colour) for colour in ("white", "pink", "brown", "babble") for snr in (10.0, 0.0)
]
VIEWS = {
    "white": ("white",),
    "mixed": ("white", "pink", "brown"),
    "white+babble": ("white", "babble"),  # babble copies: other training clips (never the test clips) as talkers
    "mixed+babble": ("white", "pink", "brown", "babble"),
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def accuracies(head, xs: dict, tests: dict) -> dict:
    import numpy as np

    return {c: round(float(np.mean(np.asarray(head.predict(xs[c])) == np.asarray(tests[c].labels))), 4) for c in tests}


def run_seed(ds, seed: int, views: list[str]) -> dict:
    from headstart.backbones import create_backbone
    from headstart.data import split
    from headstart.data.audio import with_noise
    from headstart.evaluation.baselines import baseline_predict
    from headstart.features import audio_augment, extract_features
    from headstart.heads import make_head
    from headstart.probe import fit_heads

    train, test = split(ds, seed=seed)
    # babble: three other test clips (other voices, other words) summed, `with_noise(colour="babble")`
    tests = {c: test if snr is None else with_noise(test, snr, seed=seed, colour=col) for c, snr, col in CONDITIONS}
    bb = create_backbone(SPEC)
    x = extract_features(bb, train, progress=False)
    xs = {c: extract_features(bb, t, progress=False) for c, t in tests.items()}
    row = {"probe, no copies": accuracies(make_head("linear", random_state=seed).fit(x, train.labels), xs, tests)}
    default = audio_augment.PROBE_LEVEL
    try:
        for name in views:
            audio_augment.PROBE_LEVEL = replace(default, colours=VIEWS[name])
            head = fit_heads(bb, train, x, "linear", {"random_state": seed}, seed=seed)["label"]
            row[f"probe, copies with {name} noise"] = accuracies(head, xs, tests)
    finally:
        audio_augment.PROBE_LEVEL = default
    row["log-mel + logistic regression"] = {
        c: round(sum(p == y for p, y in zip(baseline_predict(train, t, "label", seed=seed), t.labels)) / len(t), 4)
        for c, t in tests.items()
    }
    for method, acc in row.items():
        log(f"seed {seed} {method}: {acc}")
    return row


def summarise(per_seed: list[dict]) -> dict:
    import numpy as np

    out = {}
    for method in per_seed[0]:
        out[method] = {
            c: {
                "mean": round(float(np.mean([r[method][c] for r in per_seed])), 4),
                "std": round(float(np.std([r[method][c] for r in per_seed])), 4),
            }
            for c, _, _ in CONDITIONS
        }
    return out


def table(summary: dict) -> str:
    names = [c for c, _, _ in CONDITIONS]
    lines = ["| method | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for method, cells in summary.items():
        lines.append(
            f"| {method} | " + " | ".join(f"{cells[c]['mean']:.3f} ± {cells[c]['std']:.3f}" for c in names) + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--views", default="white,mixed", help=f"noise colours of the copies: {', '.join(VIEWS)}")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "audio_noise_colours.json")
    args = parser.parse_args()
    os.environ.setdefault("HEADSTART_CACHE", tempfile.mkdtemp(prefix="headstart-bench-colours-"))
    from headstart.data import load_data

    started = time.perf_counter()
    ds = load_data("samples:spoken-digits")
    seeds = [int(s) for s in args.seeds.split(",")]
    per_seed = [run_seed(ds, seed, args.views.split(",")) for seed in seeds]
    summary = summarise(per_seed)
    result = {
        "benchmark": "audio_noise_colours",
        "seeds": seeds,
        "views": {name: VIEWS[name] for name in args.views.split(",")},
        "per_seed": per_seed,
        "summary": summary,
        "wall_s": round(time.perf_counter() - started, 1),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "command": "python " + " ".join(sys.argv),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(table(summary))


if __name__ == "__main__":
    main()
