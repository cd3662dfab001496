"""Speech to text on spoken phrases: Whisper tiny.en zero-shot against fine-tuned, on held-out voices, clean and at
10 dB SNR; and headstart's transcription speed against faster-whisper on the same model and clips, in the same run.

    python benchmarks/transcribe.py [--model SPEC] [--train 80] [--epochs 2] [--strategies full] [--speed-only]
                                    [--skip-speed] [--out PATH]

Data: `samples:spoken-phrases` (espeak-ng). Training clips: `--train` drawn (seeded) from the training voices' 288
clips. Test clips: from the four held-out voices, `--test-phrases` phrases per voice, half of them phrases the
training voices also speak ("seen"), half phrases no training voice speaks ("unseen"); the same clips with white
noise at 10 dB SNR (`headstart.data.audio.add_noise`, seeded per clip). WER and CER by `headstart.sequence.metrics`
(lower case, punctuation removed). Fine-tuning: `headstart.sequence.train.train_sequence` (the Fabric loop the CLI
uses), AdamW, warm-up then linear decay, the adapter's training augmentation (light), greedy decoding throughout.

Speed: greedy transcription of `--speed-clips` test clips, one after the other and (for headstart) in its batches
of 8, by headstart's PyTorch model (float32, the converted CTranslate2 weights) and by faster-whisper's `WhisperModel`
on the package's own CTranslate2 files (CPU, float32 and int8 compute types, beam 1, no timestamps, no VAD, language
en): clips per second and the ratio to headstart, the three timed in turns. Each uses 2 threads; the machine's load
average is recorded: other jobs share this 2-core machine, so the ratios are what to read.

Writes benchmarks/results/transcribe.json (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("HEADSTART_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent
SPEC = "headstart:whisper-tiny-en"
THREADS = 2


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(v, 2) for v in os.getloadavg()]


def data(n_train: int, test_phrases: int, seed: int):
    """Training pairs (seeded draw), clean test pairs and their 10 dB copies, and which test pairs are 'seen'."""
    from headstart.data.samples import load_sample
    from headstart.data.spoken_phrases import PHRASES, TEST_PHRASES
    from headstart.sequence.data import from_dataset

    pairs = from_dataset(load_sample("spoken-phrases"), "transcribe").pairs
    train_all = [p for p in pairs if p.split == "train"]
    rng = np.random.default_rng(seed)
    train = [train_all[i] for i in sorted(rng.choice(len(train_all), size=min(n_train, len(train_all)), replace=False))]
    unseen = sorted(TEST_PHRASES)[: test_phrases // 2]
    seen = [i for i in range(len(PHRASES)) if i not in TEST_PHRASES][: test_phrases - len(unseen)]
    keep = {PHRASES[i] for i in (*seen, *unseen)}
    test = [p for p in pairs if p.split == "test" and p.target in keep]
    return train, test, [p.target in {PHRASES[i] for i in seen} for p in test]


def noisy(pairs, snr_db: float, seed: int):
    from headstart.data.audio import add_noise, load_audio
    from headstart.sequence.adapter import Pair

    out = []
    for i, p in enumerate(pairs):
        rng = np.random.default_rng([seed, i, int(snr_db * 100)])
        wave = add_noise(load_audio(p.source, 16_000), snr_db, rng, 16_000)
        out.append(Pair(wave, p.target, f"{p.where} +noise {snr_db:g} dB", p.group, p.split))
    return out


def evaluate(adapter, sets: dict, seen: list[bool]) -> dict:
    """WER/CER per condition, overall and on seen / unseen phrases, with a few examples."""
    from headstart.sequence.metrics import transcription_scores

    out = {}
    for name, pairs in sets.items():
        t0 = time.perf_counter()
        hyps = adapter.generate([p.source for p in pairs], num_beams=1)
        refs = [p.target for p in pairs]
        row = {**transcription_scores(hyps, refs), "seconds": round(time.perf_counter() - t0, 1)}
        for label, flag in (("seen", True), ("unseen", False)):
            idx = [i for i, s in enumerate(seen) if s == flag]
            sub = transcription_scores([hyps[i] for i in idx], [refs[i] for i in idx])
            row[f"wer_{label}"], row[f"n_{label}"] = sub["wer"], len(idx)
        row["examples"] = [{"ref": refs[i], "hyp": hyps[i]} for i in range(0, len(refs), max(1, len(refs) // 6))]
        out[name] = row
        log(f"  {name}: WER {row['wer']:.3f} CER {row['cer']:.3f} (seen {row['wer_seen']}, unseen {row['wer_unseen']})")
    return out


def fine_tune(train, sets, seen, args, strategy: str) -> dict:
    from headstart.sequence.speech import load_adapter
    from headstart.sequence.train import SequenceTrainConfig, train_sequence

    adapter = load_adapter(args.model, seed=args.seed)
    config = SequenceTrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch, strategy=strategy,
                                 seed=args.seed, progress=False, warmup=0.1)  # fmt: skip
    t0 = time.perf_counter()
    result = train_sequence(adapter, train, [], config)
    seconds = time.perf_counter() - t0
    log(f"fine-tuned ({strategy}) in {seconds:.0f} s: {result.history[-1]}")
    return {
        "strategy": strategy,
        "train_seconds": round(seconds, 1),
        "parameters": result.parameters,
        "history": result.history,
        **evaluate(adapter, sets, seen),
    }


def speed(clips: list, repeats: int) -> dict:
    """Clips per second: headstart (batched by 8, and one at a time) and faster-whisper (float32, int8)."""
    from faster_whisper import WhisperModel

    from headstart.backbones.whisper_ct2 import package_files
    from headstart.data.audio import load_audio
    from headstart.sequence.speech import load_adapter

    waves = [load_audio(p.source, 16_000) for p in clips]
    ours = load_adapter(SPEC)
    _, folder = package_files("whisper-tiny-en")
    fw = {
        ct: WhisperModel(str(folder), device="cpu", compute_type=ct, cpu_threads=THREADS) for ct in ("float32", "int8")
    }

    def run_fw(model, some: list | None = None) -> list[str]:
        out = []
        for w in waves if some is None else some:
            segments, _ = model.transcribe(w, beam_size=1, language="en", without_timestamps=True, vad_filter=False,
                                           condition_on_previous_text=False, temperature=0.0)  # fmt: skip
            out.append(" ".join(s.text.strip() for s in segments))
        return out

    runners = {
        "headstart_batch8": lambda: ours.generate(waves, num_beams=1),
        "headstart_batch1": lambda: [ours.generate([w], num_beams=1)[0] for w in waves],
        "faster_whisper_float32": lambda: run_fw(fw["float32"]),
        "faster_whisper_int8": lambda: run_fw(fw["int8"]),
    }
    ours.generate(waves[:2], num_beams=1)  # warm-up: first calls allocate and pick kernels
    for model in fw.values():
        run_fw(model, waves[:2])
    times: dict[str, list[float]] = {k: [] for k in runners}
    texts: dict[str, list[str]] = {}
    for _ in range(repeats):  # in turns, so a burst of load elsewhere hits them alike
        for name, run in runners.items():
            t0 = time.perf_counter()
            texts[name] = run()
            times[name].append(time.perf_counter() - t0)
    from headstart.sequence.metrics import transcription_scores

    refs = [p.target for p in clips]
    best = {k: min(v) for k, v in times.items()}
    return {
        "clips": len(clips),
        "repeats": repeats,
        "threads": THREADS,
        "seconds": {k: [round(x, 2) for x in v] for k, v in times.items()},
        "clips_per_s": {k: round(len(clips) / v, 3) for k, v in best.items()},
        "ratio_to_headstart_batch8": {k: round(best["headstart_batch8"] / v, 2) for k, v in best.items()},
        "wer": {k: transcription_scores(t, refs)["wer"] for k, t in texts.items()},
        "same_text_as_fw_float32": {
            k: sum(a == b for a, b in zip(t, texts["faster_whisper_float32"])) for k, t in texts.items()
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=SPEC, help="the speed comparison always uses tiny.en")
    ap.add_argument("--train", type=int, default=80)
    ap.add_argument("--test-phrases", type=int, default=12, help="phrases per held-out voice (half seen, half unseen)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--strategies", default="full", help="comma-separated: full, decoder, lora")
    ap.add_argument("--snr", type=float, default=10.0)
    ap.add_argument("--speed-clips", type=int, default=16)
    ap.add_argument("--speed-repeats", type=int, default=2)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--speed-only", action="store_true", help="only the speed comparison (no WER runs)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(ROOT / "results" / "transcribe.json"))
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    from headstart.sequence.speech import load_adapter

    started, load_start = time.time(), loadavg()
    train, test, seen = data(args.train, args.test_phrases, args.seed)
    sets = {"clean": test, f"snr{args.snr:g}dB": noisy(test, args.snr, args.seed)}
    voices = len({p.group for p in test})
    log(f"{len(train)} training clips ({len({p.group for p in train})} voices), {len(test)} test clips "
        f"({voices} held-out voices, {sum(seen)} seen / {len(seen) - sum(seen)} unseen phrases)")  # fmt: skip
    result: dict = {
        "command": "python benchmarks/transcribe.py " + " ".join(sys.argv[1:]),
        "model": args.model,
        "data": "samples:spoken-phrases",
        "train_clips": len(train),
        "train_voices": sorted({p.group for p in train}),
        "test_clips": len(test),
        "test_voices": sorted({p.group for p in test}),
        "seen_phrase_clips": sum(seen),
        "settings": vars(args),
        "decoding": "greedy (num_beams=1)",
        "machine": {
            "cpus": os.cpu_count(),
            "threads": THREADS,
            "python": platform.python_version(),
            "torch": torch.__version__,
            "loadavg_start": load_start,
        },  # fmt: skip
    }
    if not args.speed_only:
        log("zero-shot")
        result["zero_shot"] = evaluate(load_adapter(args.model, seed=args.seed), sets, seen)
        result["fine_tuned"] = [fine_tune(train, sets, seen, args, s) for s in args.strategies.split(",") if s]
    if not args.skip_speed:
        log("speed")
        result["speed"] = speed(test[: args.speed_clips], args.speed_repeats)
        log(json.dumps(result["speed"]["clips_per_s"]))
    result["machine"]["loadavg_end"] = loadavg()
    result["minutes"] = round((time.time() - started) / 60, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    log(f"wrote {args.out} ({result['minutes']} min)")


if __name__ == "__main__":
    main()
