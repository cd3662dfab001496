"""Memory layout per device and precision: channels_last against the plain (NCHW) layout, for a training step and
an inference batch of EfficientNet-Lite0 (depthwise convolutions), measured in the same run.

headstart picks channels_last on the CPU and for 16-bit on GPUs, the plain layout for float32 on GPUs
(`headstart.backbones.base.preferred_memory_format`); this script checks that choice on the machine it runs on.

    python benchmarks/layout.py                      # CPU: 112 px, batch 16
    python benchmarks/layout.py --size 224 --batch-size 64 --device cuda --precisions fp32,bf16

Prints milliseconds per step and the ratio plain / channels_last (> 1: channels_last is faster), and writes
benchmarks/results/layout[_DEVICE].json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).parent / "results"


def step_ms(model: torch.nn.Module, x: torch.Tensor, train: bool, dtype: torch.dtype | None, reps: int) -> float:
    device = x.device
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4) if train else None
    times = []
    for i in range(reps + 2):  # 2 warm-up steps (cuDNN autotuning, allocator)
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
            if train:
                loss = model(x).float().logsumexp(1).mean()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            else:
                with torch.inference_mode():
                    model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def main() -> None:
    import timm

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--precisions", default="fp32", help="comma-separated: fp32, bf16, fp16")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True
    dtypes = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
    rows = []
    for precision in args.precisions.split(","):
        for train in (True, False):
            ms = {}
            for layout in (torch.contiguous_format, torch.channels_last):
                torch.manual_seed(0)
                model = timm.create_model("tf_efficientnet_lite0", pretrained=False).to(device, memory_format=layout)
                model.train(train)
                x = torch.randn(args.batch_size, 3, args.size, args.size, device=device)
                x = x.contiguous(memory_format=layout)
                ms[str(layout)] = step_ms(model, x, train, dtypes[precision], args.reps)
            plain, last = ms["torch.contiguous_format"], ms["torch.channels_last"]
            row = {"device": str(device), "precision": precision, "step": "train" if train else "inference",
                   "size": args.size, "batch_size": args.batch_size, "plain_ms": round(plain, 2),
                   "channels_last_ms": round(last, 2), "plain_over_channels_last": round(plain / last, 3)}  # fmt: skip
            rows.append(row)
            print(
                f"{device.type:5} {precision:5} {row['step']:9} {args.size} px x {args.batch_size}:  plain "
                f"{plain:8.1f} ms  channels_last {last:8.1f} ms  plain/channels_last {plain / last:5.2f}"
            )
    name = "layout.json" if device.type == "cpu" else f"layout_{device.type}.json"
    (RESULTS / name).write_text(json.dumps({"rows": rows, "torch": torch.__version__}, indent=1) + "\n")


if __name__ == "__main__":
    main()
