"""Transformer fusion for text exports: one `Attention` node per layer instead of ~20 small ones.

ONNX Runtime's transformer optimizer (`onnxruntime.transformers.optimizer`, model type "bert") rewrites a BERT-family
graph into its fused contrib ops (EmbedLayerNormalization, Attention, SkipLayerNormalization, BiasGelu), which its CPU
kernels run much faster, and which dynamic int8 then quantises whole. Its patterns match the graph of the TorchScript
exporter over the *eager* attention of transformers; the SDPA attention transformers uses by default, and the dynamo
exporter's graph, fuse only the layer norms and GELUs. So a fusable text backbone is exported with eager attention
through TorchScript, then fused; the parity gate checks the fused graph against PyTorch as it checks any other, and
the plain graph is kept where fusion finds no attention to fuse.

Measured on all-MiniLM-L6-v2 (BBC News, 2 loaded cores, ratios in one run, `benchmarks/runtime.py`): the fused fp32
graph runs 1.2x (batch 1) / 1.3x (batch 32) the plain dynamo graph; fused + dynamic int8 2.4x / 2.5x, at 0.25 of the
fp32 size (the embeddings are int8 too), features within 0.02 of fp32.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

# transformers' model types whose graphs ONNX Runtime fuses with its "bert" patterns
FUSABLE_TYPES = ("bert", "roberta", "xlm-roberta", "camembert", "electra")
FUSED_OPS = ("EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu", "FastGelu", "Gelu")


def _configs(module: Any) -> list[Any]:
    """Every transformers config inside `module` (a sentence-transformers model holds its BERT deeper down)."""
    return [m.config for m in module.modules() if hasattr(getattr(m, "config", None), "_attn_implementation")]


def fusable(backbone: Any) -> dict[str, Any] | None:
    """The optimizer's settings for a text backbone it can fuse (model type, heads, hidden size), else None."""
    module = getattr(backbone, "module", None)
    if module is None or not hasattr(module, "modules"):
        return None
    for config in _configs(module):
        if getattr(config, "model_type", None) in FUSABLE_TYPES:
            return {"model_type": "bert", "num_heads": int(config.num_attention_heads),
                    "hidden_size": int(config.hidden_size), "source_type": config.model_type}  # fmt: skip
    return None


@contextmanager
def eager_attention(backbone: Any) -> Iterator[None]:
    """Within the block, the backbone's transformers modules use eager attention (the pattern the optimizer fuses);
    their own setting comes back afterwards. The weights and the results are the same."""
    configs = _configs(backbone.module)
    before = [c._attn_implementation for c in configs]
    for config in configs:
        config._attn_implementation = "eager"
    try:
        yield
    finally:
        for config, value in zip(configs, before):
            config._attn_implementation = value


def fuse(source: Path, target: Path, settings: dict[str, Any]) -> dict[str, Any]:
    """Write the fused graph of `source` to `target`; returns the count of each fused op, and `fused: False` (nothing
    written) when the optimizer found no attention to fuse or failed."""
    import logging

    try:
        from onnxruntime.transformers import optimizer

        logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)
        optimized = optimizer.optimize_model(
            str(source),
            model_type=settings["model_type"],
            num_heads=settings["num_heads"],
            hidden_size=settings["hidden_size"],
            opt_level=0,  # the fusions only; ONNX Runtime applies its own graph optimisations when it loads the model
        )
        counts = {k: v for k, v in optimized.get_fused_operator_statistics().items() if v and k in FUSED_OPS}
    except Exception as exc:  # an optimizer that cannot read the graph: the plain graph serves as well, slower
        return {"fused": False, "reason": f"{type(exc).__name__}: {str(exc)[:200]}"}
    if not counts.get("Attention"):
        return {"fused": False, "reason": "no attention pattern matched", "ops": counts}
    from headstart.export.convert import EXTERNAL_DATA_BYTES, weight_bytes

    target.parent.mkdir(parents=True, exist_ok=True)
    optimized.model.producer_name = "headstart"
    # its own writer adds the com.microsoft opset the fused ops need; large weights go beside it (model.onnx.data)
    optimized.save_model_to_file(
        str(target), use_external_data_format=weight_bytes(optimized.model) > EXTERNAL_DATA_BYTES
    )
    return {"fused": True, "ops": counts}
