"""Text backbones (a tiny random BERT through `hf:`), word dropout, several label columns, LoRA (PEFT)."""

from __future__ import annotations

import random

import numpy as np

import headstart as hs
from headstart.finetuning import finetune
from tests.finetune.ft_helpers import FAST, TINY_CNN


def test_text_backbone_finetunes_and_reloads(topics, tiny_bert_dir, tmp_path):
    spec = f"hf:{tiny_bert_dir}"
    model = finetune(topics, backbone=spec, strategy="layer-decay", epochs=2, lr=1e-2, augment="strong",
                     out=tmp_path / "text", **FAST)  # fmt: skip
    history = model.report["finetune"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    loaded = hs.load(tmp_path / "text")
    texts = topics.items[:6]
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=1e-5)


def test_word_dropout_is_seeded_and_keeps_a_word(tiny_bert_dir):
    from headstart.backbones import create_backbone
    from headstart.finetune.augment import WordDropout

    drop = WordDropout(create_backbone(f"hf:{tiny_bert_dir}"), p=0.5)
    text = "the market shares fell sharply on monday morning"
    assert drop(text, random.Random(3)) == drop(text, random.Random(3))
    assert len(drop(text, random.Random(3)).split()) < len(text.split())
    assert drop("one", random.Random(0)) == "one"


def test_multitask_heads_share_the_backbone(digits_two_tasks, tmp_path):
    model = finetune(digits_two_tasks, backbone=TINY_CNN, epochs=2, lr=3e-2, val_size=0.25,
                     task_weights={"digit": 1.0, "parity": 0.5}, out=tmp_path / "multi", **FAST)  # fmt: skip
    assert model.tasks == ["digit", "parity"]
    assert set(model.metrics) == {"digit", "parity"}
    assert {"val_accuracy/digit", "val_accuracy/parity"} <= set(model.report["finetune"]["history"][0])
    loaded = hs.load(tmp_path / "multi")
    assert loaded.predict(digits_two_tasks.items[:4], task="parity") == model.predict(
        digits_two_tasks.items[:4], task="parity"
    )


def test_lora_trains_only_adapters_then_merges_into_plain_weights(topics, tiny_bert_dir, tmp_path):
    import torch

    from headstart.backbones import create_backbone

    spec = f"hf:{tiny_bert_dir}"
    before = {k: v.clone() for k, v in create_backbone(spec).module.state_dict().items()}
    model = finetune(topics, backbone=spec, strategy="lora", epochs=2, lr=5e-2, lora_r=4,
                     out=tmp_path / "lora", **FAST)  # fmt: skip
    after = model.backbone.module.state_dict()
    assert set(after) == set(before)  # merged: the plain architecture again, no lora_A / lora_B left
    linear = {f"{n}.weight" for n, m in model.backbone.module.named_modules() if isinstance(m, torch.nn.Linear)}
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and changed <= linear  # only the adapted linear weights moved (by the merged B @ A)
    assert not any("embeddings" in k or "LayerNorm" in k for k in changed)
    history = model.report["finetune"]["history"]
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    counts = model.report["finetune"]["parameters"]
    assert 0 < counts["backbone_trainable"] < counts["backbone_total"] / 5  # the adapters, not the backbone
    loaded = hs.load(tmp_path / "lora")
    np.testing.assert_allclose(loaded.predict_proba(topics.items[:5]), model.predict_proba(topics.items[:5]), atol=1e-5)
