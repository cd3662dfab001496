"""The parity gate: ONNX Runtime against PyTorch eager on the same inputs, batch by batch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from headstart.export.graph import collate

BATCH_SIZES = (1, 3, 17)
PARITY_ITEMS = 34  # items compared at each batch size: two full batches of 17


@dataclass(frozen=True)
class Tolerance:
    """Largest absolute differences allowed between ONNX Runtime and PyTorch, fp32. The features' tolerance scales
    with their size when they exceed 1 in magnitude (speech_embedding's reach the tens): float32 sums differ in their
    last bits, relative to the numbers summed. A steep head carries those differences into the probabilities,
    amplified: EfficientNet-Lite0's features within 1.3e-5 gave probabilities within 1.7e-5 under a head with z-score
    scaling and C=1 on 80 digits, so the probabilities get the features' 1e-4 (was 1e-5, which refused that model);
    an export bug (a scaling or softmax lost) moves them by 1e-2 and more, and the top-1 check stands beside it."""

    features: float = 1e-4
    probabilities: float = 1e-4


def session(path: Any, threads: int | None = None) -> Any:
    import onnxruntime as ort

    from headstart.runtime import session_options

    return ort.InferenceSession(str(path), sess_options=session_options(threads), providers=["CPUExecutionProvider"])


def run_torch(graph: torch.nn.Module, feed: dict[str, torch.Tensor]) -> list[np.ndarray]:
    with torch.inference_mode():
        return [t.detach().float().numpy() for t in graph(**feed)]


def run_session(sess: Any, feed: dict[str, torch.Tensor]) -> list[np.ndarray]:
    return sess.run(None, {k: v.numpy() for k, v in feed.items()})


def compare(
    graph: torch.nn.Module,
    sess: Any,
    backbone: Any,
    modality: str,
    prepared: list[Any],
    *,
    batch_sizes: tuple[int, ...] = BATCH_SIZES,
    tolerance: Tolerance | None = None,
    reference: dict[tuple[int, int], list[np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Max absolute difference of the features and of every task's probabilities, and top-1 agreement, over
    `prepared` run at each batch size (the same batches through both). `tolerance` None: figures only.
    `reference`: PyTorch's outputs per batch (size, start), filled on first use and read after, so that comparing
    a second model with the same graph on the same items (the int8 one, or the plain graph after a fused one)
    does not run PyTorch again: the graph is in inference mode and its outputs are the same each time."""
    reference = {} if reference is None else reference
    by_size: dict[str, Any] = {}
    feats, probs, agree, total, flips, scale = 0.0, 0.0, 0, 0, 0, 1.0
    for size in batch_sizes:
        f_diff = p_diff = 0.0
        for start in range(0, len(prepared), size):
            feed = collate(backbone, modality, prepared[start : start + size])
            if (size, start) not in reference:
                reference[(size, start)] = run_torch(graph, feed)
            ref, got = reference[(size, start)], run_session(sess, feed)
            f_diff = max(f_diff, float(np.abs(ref[0] - got[0]).max(initial=0.0)))
            scale = max(scale, float(np.abs(ref[0]).max(initial=0.0)))
            for r, g in zip(ref[1:], got[1:], strict=True):
                p_diff = max(p_diff, float(np.abs(r - g).max(initial=0.0)))
                same = r.argmax(1) == g.argmax(1)
                agree, total = agree + int(same.sum()), total + len(same)
                top2 = np.sort(r, axis=1)[:, -2:] if r.shape[1] > 1 else np.zeros((len(r), 2))
                margin = top2[:, 1] - top2[:, 0]  # a flip between two labels PyTorch itself nearly ties is noise
                slack = 2 * (tolerance.probabilities if tolerance else 0.0)
                flips += int((~same & (margin > slack)).sum())
        by_size[str(size)] = {"features_max_abs_diff": f_diff, "probabilities_max_abs_diff": p_diff}
        feats, probs = max(feats, f_diff), max(probs, p_diff)
    out: dict[str, Any] = {
        "items": len(prepared),
        "batch_sizes": list(batch_sizes),
        "features_max_abs_diff": feats,
        "features_max_abs": scale,
        "probabilities_max_abs_diff": probs,
        "top1_agreement": agree / total if total else 1.0,
        "top1_disagreements": total - agree,
        "by_batch_size": by_size,
    }
    if tolerance is not None:
        features_tol = tolerance.features * scale
        out["tolerance"] = {"features": features_tol, "probabilities": tolerance.probabilities}
        out["passed"] = feats <= features_tol and probs <= tolerance.probabilities and flips == 0
    return out


def failure(parity: dict[str, Any]) -> str:
    """One line saying what failed the gate."""
    tol = parity["tolerance"]
    parts = []
    if parity["features_max_abs_diff"] > tol["features"]:
        parts.append(f"features differ by up to {parity['features_max_abs_diff']:.3g} (tolerance {tol['features']:g})")
    if parity["probabilities_max_abs_diff"] > tol["probabilities"]:
        parts.append(
            f"probabilities differ by up to {parity['probabilities_max_abs_diff']:.3g} "
            f"(tolerance {tol['probabilities']:g})"
        )
    if parity["top1_disagreements"] and not parts:
        parts.append(f"{parity['top1_disagreements']} top-1 labels differ")
    return "; ".join(parts) or "parity check failed"


def outputs_over(
    sess: Any, backbone: Any, modality: str, prepared: list[Any], batch_size: int = 32
) -> list[np.ndarray]:
    """Every graph output for every prepared item, through onnxruntime."""
    parts = [run_session(sess, collate(backbone, modality, prepared[s : s + batch_size]))
             for s in range(0, len(prepared), batch_size)]  # fmt: skip
    return [np.concatenate(p) for p in zip(*parts, strict=True)]


def summary(parity: dict[str, Any]) -> str:
    sizes = ", ".join(str(s) for s in parity["batch_sizes"])
    return (
        f"{parity['items']} items at batch {sizes}: features max |diff| {parity['features_max_abs_diff']:.2g}, "
        f"probabilities max |diff| {parity['probabilities_max_abs_diff']:.2g}, "
        f"top-1 agreement {100 * parity['top1_agreement']:.1f}%"
    )
