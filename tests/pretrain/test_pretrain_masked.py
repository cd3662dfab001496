"""Masked-LM pretraining: continued (hf: and st: encoders) and from scratch (a WordPiece tokenizer trained on the
corpus); the result loads as `local:DIR`, fits, resumes, and refuses what it cannot do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import headstart as hs
from headstart.backbones import create_backbone
from headstart.data import from_arrays
from headstart.errors import HeadstartError
from headstart.pretrain import pretrain
from tests.conftest import make_texts

QUICK = {"epochs": 2, "batch_size": 8, "progress": False}


@pytest.fixture(scope="module")
def corpus() -> list[str]:
    texts, _ = make_texts(48, seed=3)
    return texts


def _embed(spec: str, texts: list[str]) -> np.ndarray:
    backbone = create_backbone(spec)
    with torch.inference_mode():
        return backbone.embed(backbone.collate([backbone.prepare(t) for t in texts])).numpy()


def test_continued_pretraining_adapts_an_hf_encoder(corpus, tiny_bert_dir, tmp_path):
    spec = f"hf:{tiny_bert_dir}"
    result = pretrain(corpus, method="masked", backbone=spec, out=tmp_path / "mlm", lr=1e-3,
                      **{"head_steps": 2, "max_length": 32}, **QUICK)  # fmt: skip
    assert result.finished and result.spec == f"local:{(tmp_path / 'mlm').resolve()}"
    rows = result.history
    assert len(rows) == 2 and rows[-1]["loss"] < rows[0]["loss"] and rows[0]["samples_per_s"] > 0
    before, after = _embed(spec, corpus[:4]), _embed(result.spec, corpus[:4])
    assert before.shape == after.shape and not np.allclose(before, after)  # the encoder itself changed
    np.testing.assert_allclose(_embed(result.spec, corpus[:4]), after, atol=1e-6)  # and reloads identically
    assert (tmp_path / "mlm" / "loss-curve.png").stat().st_size > 0


def test_continued_pretraining_of_a_sentence_transformer_then_fit(corpus, tiny_st_dir, tmp_path):
    result = pretrain(corpus, method="masked", backbone=f"st:{tiny_st_dir}", out=tmp_path / "st-mlm", lr=1e-3,
                      **{"head_steps": 1, "max_length": 32}, **QUICK)  # fmt: skip
    texts, labels = make_texts(40, seed=5)
    model = hs.fit(from_arrays(texts, labels), backbone=result.spec, baseline=False, progress=False)
    assert model.metrics["label"]["accuracy"] > 0.5


def test_bert_from_scratch_trains_its_own_tokenizer(corpus, tmp_path):
    result = pretrain(corpus, method="masked", out=tmp_path / "scratch", lr=2e-3,
                      **{"vocab_size": 200, "layers": 1, "hidden": 32, "heads": 2, "max_length": 32},
                      **QUICK)  # fmt: skip
    folder = tmp_path / "scratch"
    assert (folder / "hf-architecture" / "config.json").is_file()
    backbone = create_backbone(result.spec)
    assert backbone.embed_dim == 32 and backbone.tokenizer.mask_token == "[MASK]"
    moved = tmp_path / "moved"
    folder.rename(moved)  # the architecture is referenced relative to the folder, so the folder can move
    np.testing.assert_allclose(
        _embed(f"local:{moved}", corpus[:3]),
        _embed(result.spec.replace(str(folder.resolve()), str(moved.resolve())), corpus[:3]),
    )


def test_interrupted_masked_pretraining_resumes_to_the_same_loss(corpus, tiny_bert_dir, tmp_path):
    options = {"head_steps": 2, "max_length": 32}
    common = dict(method="masked", backbone=f"hf:{tiny_bert_dir}", lr=1e-3, **options, epochs=3,
                  batch_size=8, progress=False)  # fmt: skip
    whole = pretrain(corpus, out=tmp_path / "whole", **common)
    part = pretrain(corpus, out=tmp_path / "part", stop_after=1, **common)
    assert not part.finished
    rest = pretrain(corpus, out=tmp_path / "part", resume=True, **common)
    assert rest.finished and rest.resumed_at == 1
    assert rest.history[-1]["loss"] == pytest.approx(whole.history[-1]["loss"], rel=1e-5)


def test_masked_pretraining_refuses_images_and_unknown_options(tiny_bert_dir, tmp_path):
    images = [np.zeros((8, 8), dtype=np.uint8)] * 4
    with pytest.raises(HeadstartError, match="text"):
        pretrain(images, method="masked", out=tmp_path / "x", progress=False)
    with pytest.raises(HeadstartError, match="no option mask_rate"):
        pretrain(["a b c"] * 20, method="masked", backbone=f"hf:{tiny_bert_dir}", out=tmp_path / "y",
                 **{"mask_rate": 0.2}, progress=False)  # fmt: skip
