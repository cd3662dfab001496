"""Few-shot text: contrastive tuning of a sentence encoder on same/different-class pairs (the SetFit recipe).

Tunstall et al. 2022, "Efficient Few-Shot Learning Without Prompts": from a handful of labelled texts, build many
pairs (two texts of one class: a positive, of two classes: a negative), tune the encoder so that cosine similarity
follows the pair label, then fit a logistic-regression head on the tuned embeddings. `contrastive_tune` is the
first half; the head is any headstart head on features extracted with the tuned backbone.

The backbone is trained in place through its own tokenizer and pooling (`backbone.collate`, `backbone.embed`), so
any `st:` or `hf:` text backbone works. Its `weights_id` changes to one derived from the tuned weights, so the
feature cache never mixes tuned and untuned features.

Losses (`loss=`): "cosine" (default, SetFit's: mean squared error between the cosine of each pair and its 0/1
label) or "supcon" (supervised contrastive over every text of a batch, same-class texts as positives, temperature
0.05 as sentence-transformers' MultipleNegativesRankingLoss); both see the same batches of pairs, so they cost the
same. benchmarks/setfit.py compares them.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import numpy as np

from headstart.data.dataset import Dataset
from headstart.errors import HeadstartError

LOSSES = ("cosine", "supcon")
SUPCON_TEMPERATURE = 0.05
WARMUP_FRACTION = 0.1


def contrastive_tune(
    backbone: Any,
    train: Dataset,
    *,
    task: str | None = None,
    seed: int = 0,
    epochs: int = 1,
    pairs_per_item: int = 20,
    batch_size: int = 16,
    lr: float = 2e-5,
    progress: bool = True,
    loss: str = "cosine",
) -> dict[str, Any]:
    """Tune `backbone` (a TextBackbone) in place on pairs built from the labels of `task` in `train`.

    Each epoch draws `pairs_per_item * len(train)` pairs (seeded; half positive, half negative), in batches of
    `batch_size` pairs, with AdamW at `lr`, 10% linear warm-up then linear decay, gradients clipped at norm 1.
    Trains on the GPU when there is one; the module ends in eval mode on the CPU with a new `weights_id`.
    The caller's random state is left as it was. Returns a history: pairs, steps, loss per epoch, seconds.
    """
    import torch

    from headstart.backbones.base import TextBackbone

    if not isinstance(backbone, TextBackbone):
        kind = getattr(backbone, "modality", type(backbone).__name__)
        raise HeadstartError(f"contrastive tuning needs a text backbone (st: or hf:), not a {kind} one")
    texts, labels = _texts_and_labels(train, task)
    _check_settings(epochs=epochs, pairs_per_item=pairs_per_item, batch_size=batch_size, lr=lr, loss=loss)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    module = backbone.module
    _thaw_buffers(module)
    trainable = list(module.parameters())
    was_frozen = [not p.requires_grad for p in trainable]
    for p in trainable:
        p.requires_grad_(True)
    n_pairs = pairs_per_item * len(texts)
    steps_per_epoch = -(-n_pairs // batch_size)
    total_steps = steps_per_epoch * epochs
    history: dict[str, Any] = {
        "loss_name": loss,
        "items": len(texts),
        "classes": len(set(labels)),
        "pairs": n_pairs * epochs,
        "positive_pairs": 0,
        "steps": 0,
        "epochs": epochs,
        "loss": [],
        "seconds": 0.0,
    }
    t0 = time.perf_counter()
    bar = _bar(total_steps, f"contrastive tuning ({loss})", progress)
    try:
        with torch.random.fork_rng(devices=[torch.cuda.current_device()] if device.type == "cuda" else []):
            torch.manual_seed(seed)
            module.to(device).train()
            optimizer = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.01)
            warmup = max(1, int(WARMUP_FRACTION * total_steps))
            schedule = torch.optim.lr_scheduler.LambdaLR(
                optimizer,
                lambda step: min((step + 1) / warmup, max(0.0, (total_steps - step) / max(1, total_steps - warmup))),
            )
            y = np.asarray(labels, dtype=object)
            for epoch in range(epochs):
                pairs = make_pairs(y, pairs_per_item, seed=(seed, epoch))
                history["positive_pairs"] += int(pairs[:, 2].sum())
                losses: list[float] = []
                for start in range(0, len(pairs), batch_size):
                    chunk = pairs[start : start + batch_size]
                    value = _step(backbone, texts, y, chunk, loss, device)
                    optimizer.zero_grad(set_to_none=True)
                    value.backward()
                    torch.nn.utils.clip_grad_norm_(trainable, 1.0)
                    optimizer.step()
                    schedule.step()
                    losses.append(float(value.detach()))
                    history["steps"] += 1
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses[-20:]):.4f}")
                history["loss"].append(float(np.mean(losses)))
    finally:
        bar.close()
        module.cpu().eval()
        for p, frozen in zip(trainable, was_frozen):
            p.requires_grad_(not frozen)
        if history["steps"]:  # even after an interruption: the feature cache must never mix tuned and untuned
            backbone.weights_id = f"contrastive-{weights_digest(module)}"
    history["seconds"] = time.perf_counter() - t0
    history["weights_id"] = backbone.weights_id
    return history


def make_pairs(labels: np.ndarray, pairs_per_item: int, *, seed: int | tuple[int, ...]) -> np.ndarray:
    """`pairs_per_item * len(labels)` index pairs as rows (i, j, same_class), half positive and half negative,
    shuffled; the same seed gives the same pairs. Every item anchors about as many negatives as the others; the
    positives are spread over the items whose class has at least one other item."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=object)
    n = len(labels)
    classes = sorted(set(labels.tolist()))
    members = {c: np.flatnonzero(labels == c) for c in classes}
    others = {c: np.flatnonzero(labels != c) for c in classes}
    total = pairs_per_item * n
    n_pos = total // 2
    n_neg = total - n_pos
    eligible = np.concatenate([m for m in members.values() if len(m) >= 2]).astype(int)
    rows: list[tuple[int, int, int]] = []
    for i in _cycle(eligible, n_pos, rng):
        same = members[labels[i]]
        j = same[rng.integers(len(same) - 1)]
        j = j if j != i else same[-1]  # any other member of the class, uniformly
        rows.append((int(i), int(j), 1))
    for i in _cycle(np.arange(n), n_neg, rng):
        other = others[labels[i]]
        rows.append((int(i), int(other[rng.integers(len(other))]), 0))
    out = np.asarray(rows, dtype=np.int64)
    return out[rng.permutation(len(out))]


def weights_digest(module: Any) -> str:
    """A sha256 over every tensor of the module's state dict, by name: the identity of tuned weights."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode() + tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _thaw_buffers(module: Any) -> None:
    """Replace buffers made under `torch.inference_mode` with ordinary copies. transformers 5 fills BERT's
    `position_ids` / `token_type_ids` on the first forward; when that was feature extraction (inference mode), a
    training forward would fail with "Inference tensors cannot be saved for backward"."""
    for sub in module.modules():
        for name, buf in list(sub._buffers.items()):
            if buf is not None and buf.is_inference():
                sub._buffers[name] = buf.clone()


def _cycle(indices: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` indices drawn as whole shuffled rounds over `indices` (so each appears about equally often)."""
    rounds = -(-count // len(indices))
    return np.concatenate([rng.permutation(indices) for _ in range(rounds)])[:count]


def _step(backbone: Any, texts: list[str], labels: np.ndarray, chunk: np.ndarray, loss: str, device: Any) -> Any:
    import torch
    import torch.nn.functional as F

    left, right = chunk[:, 0], chunk[:, 1]
    batch = backbone.collate([backbone.prepare(texts[i]) for i in np.concatenate([left, right])])
    batch = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}
    emb = backbone.embed(batch).float()
    k = len(chunk)
    if loss == "cosine":
        cos = F.cosine_similarity(emb[:k], emb[k:], dim=-1)
        return F.mse_loss(cos, torch.as_tensor(chunk[:, 2], dtype=cos.dtype, device=device))
    return _supcon(emb, labels[np.concatenate([left, right])], device)


def _supcon(emb: Any, labels: np.ndarray, device: Any) -> Any:
    """Supervised contrastive loss (Khosla et al. 2020, 'L_out'): for each text, the mean over its same-class
    texts in the batch of -log softmax over all other texts of the batch."""
    import torch
    import torch.nn.functional as F

    z = F.normalize(emb, dim=-1)
    logits = z @ z.T / SUPCON_TEMPERATURE
    n = len(labels)
    eye = torch.eye(n, dtype=torch.bool, device=device)
    codes = torch.as_tensor(np.unique(labels, return_inverse=True)[1], device=device)
    positive = (codes[:, None] == codes[None, :]) & ~eye
    log_prob = logits.masked_fill(eye, float("-inf")).log_softmax(dim=1)
    per_anchor = -(log_prob.masked_fill(~positive, 0.0)).sum(1) / positive.sum(1).clamp(min=1)
    has_positive = positive.any(1)
    return per_anchor[has_positive].mean() if bool(has_positive.any()) else (logits * 0.0).sum()


def _texts_and_labels(train: Dataset, task: str | None) -> tuple[list[str], list[str]]:
    if not isinstance(train, Dataset):
        raise HeadstartError(f"contrastive tuning needs a headstart Dataset, not {type(train).__name__}")
    if train.modality != "text":
        raise HeadstartError(f"contrastive tuning needs text data; {train.source} holds {train.modality} data")
    if not train.targets:
        raise HeadstartError(f"contrastive tuning needs labels; {train.source} has none")
    column = task or train.tasks[0]
    if column not in train.targets:
        raise HeadstartError(f"{train.source} has no label column {column!r}; its columns: {', '.join(train.tasks)}")
    labels = [str(v) for v in train.targets[column]]
    counts: dict[str, int] = {}
    for v in labels:
        counts[v] = counts.get(v, 0) + 1
    if len(counts) < 2:
        only = next(iter(counts), "none")
        raise HeadstartError(
            f"contrastive tuning needs at least 2 classes in column {column!r} of {train.source}; "
            f"it has one ({only!r}): there are no different-class pairs to learn from"
        )
    if max(counts.values()) < 2:
        raise HeadstartError(
            f"contrastive tuning needs a class with at least 2 items in column {column!r} of {train.source}; "
            "every class has one: there are no same-class pairs to learn from"
        )
    bad = next((w for w, t in zip(train.where, train.items) if not isinstance(t, str)), None)
    if bad is not None:
        raise HeadstartError(f"contrastive tuning needs texts; {bad} is not a string")
    return list(train.items), labels


def _check_settings(*, epochs: int, pairs_per_item: int, batch_size: int, lr: float, loss: str) -> None:
    for name, value in (("epochs", epochs), ("pairs_per_item", pairs_per_item), ("batch_size", batch_size)):
        if int(value) != value or value < 1:
            raise HeadstartError(f"contrastive tuning: {name} must be a whole number of at least 1, not {value!r}")
    if not lr > 0:
        raise HeadstartError(f"contrastive tuning: lr must be positive, not {lr!r}")
    if loss not in LOSSES:
        raise HeadstartError(f"contrastive tuning: unknown loss {loss!r}; choose one of {', '.join(LOSSES)}")


def _bar(total: int, desc: str, enabled: bool) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", disable=not enabled, leave=True, dynamic_ncols=True)
