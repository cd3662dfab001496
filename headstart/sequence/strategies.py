"""Which parameters of a sequence model train, shared by every task's adapter.

- `full`: every parameter;
- `decoder`: the encoder frozen, the decoder (and its cross-attention) trains;
- `lora`: PEFT's LoRA adapters in the attention projections train, everything else stays; before saving,
  `merge_lora` folds them into the weights, so a saved model has its plain architecture.
"""

from __future__ import annotations

from typing import Any

from headstart.errors import HeadstartError

STRATEGIES: tuple[str, ...] = ("full", "decoder", "lora")
# attention projections across the architectures in use: BART/Marian/Whisper (q_proj...), BERT (query...), T5 (q...)
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "out_proj", "query", "key", "value", "q", "k", "v", "o")


def select_trainable(model: Any, strategy: str, *, encoder: Any, lora_r: int = 8, lora_alpha: int = 16) -> None:
    """Set `requires_grad` on `model`'s parameters for `strategy` (LoRA adapters are injected in place)."""
    if strategy not in STRATEGIES:
        raise HeadstartError(f"strategy must be one of {', '.join(STRATEGIES)}, not {strategy!r}")
    if not hasattr(model, FIXED):  # parameters the model itself never trains (e.g. sinusoidal positions)
        setattr(model, FIXED, _fixed(model))
    fixed = getattr(model, FIXED)
    for name, p in model.named_parameters():
        p.requires_grad_(name not in fixed)
    if strategy == "decoder":
        for p in encoder.parameters():
            p.requires_grad_(False)
    elif strategy == "lora":
        _add_lora(model, lora_r, lora_alpha)


def _add_lora(model: Any, r: int, alpha: int) -> None:
    import torch

    try:
        from peft import LoraConfig, inject_adapter_in_model
    except ImportError:
        raise HeadstartError("strategy lora needs the package peft (pip install peft); it is not installed") from None
    present = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}
    targets = sorted(present & set(LORA_TARGETS))
    if not targets:
        raise HeadstartError(f"strategy lora found no attention projections ({', '.join(LORA_TARGETS)}) to adapt")
    inject_adapter_in_model(LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules=targets), model)
    for name, p in model.named_parameters():
        p.requires_grad_("lora_" in name)


FIXED = "_headstart_fixed_parameters"


def _fixed(model: Any) -> set[str]:
    """Frozen parameters, and those of sinusoidal position tables (loading can leave them with requires_grad)."""
    fixed = {n for n, p in model.named_parameters() if not p.requires_grad}
    for prefix, module in model.named_modules():
        if "Sinusoidal" in type(module).__name__:
            fixed |= {f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters()}
    return fixed


def merge_lora(model: Any) -> None:
    """Fold any LoRA adapters into their weights and put the plain layers back (no-op without adapters)."""
    if any("lora_" in name for name, _ in model.named_parameters()):
        from headstart.finetune.strategies import merge_lora as merge

        merge(model)


def trainable_count(model: Any) -> dict[str, int]:
    """Parameters in all, and those that train."""
    total = sum(p.numel() for p in model.parameters())
    return {"total": int(total), "trainable": int(sum(p.numel() for p in model.parameters() if p.requires_grad))}
