"""`samples:spoken-phrases`: the recipe (voices held out whole, phrases only the test voices say), a small synthesis
through the real espeak-ng path into the cache, its pairs and fixed split, and the message when espeak-ng is missing."""

from __future__ import annotations

import shutil
from collections import Counter

import pytest

from headstart.data import spoken_phrases
from headstart.data.samples import load_sample
from headstart.errors import DataError


def test_the_recipe_holds_out_whole_voices_and_some_phrases() -> None:
    plan = spoken_phrases.clip_plan()
    assert len(plan) == 480 and len({c["file"] for c in plan}) == 480
    splits = {c["voice"]: c["split"] for c in plan}
    assert Counter(splits.values()) == {"train": 8, "test": 4}
    heard = {c["text"] for c in plan if c["split"] == "train"}
    said_in_test = {c["text"] for c in plan if c["split"] == "test"}
    assert len(heard) == 36 and len(said_in_test) == 48 and len(said_in_test - heard) == 12
    assert all(2 <= len(p.split()) <= 6 for p in spoken_phrases.PHRASES) and len(set(spoken_phrases.PHRASES)) == 48
    rates = [c["rate"] for c in plan]
    assert min(rates) >= 140 and max(rates) < 185 and len(set(rates)) > 20  # seeded jitter
    assert spoken_phrases.clip_plan() == plan


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_a_small_recipe_is_synthesised_once_into_the_cache(monkeypatch, tmp_path) -> None:
    from headstart.sequence.data import from_dataset

    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path))
    monkeypatch.setattr(spoken_phrases, "PHRASES", ("open the door", "the sky is blue"))
    monkeypatch.setattr(spoken_phrases, "TEST_PHRASES", frozenset({1}))
    monkeypatch.setattr(spoken_phrases, "VOICES", (("en-us", "en-us", "train"), ("en-rp", "en-gb-x-rp", "test")))
    ds = load_sample("spoken-phrases")
    assert ds.targets["target"] == ["open the door", "open the door", "the sky is blue"]
    assert ds.targets["split"] == ["train", "test", "test"] and ds.groups == ["en-us", "en-rp", "en-rp"]
    assert all(p.is_file() and p.stat().st_size > 10_000 for p in ds.items)
    folder = spoken_phrases.sample_folder()
    assert ds.items[0].parent.parent == folder and not list(folder.glob(".*"))  # no leftovers of the synthesis
    pairs = from_dataset(ds, "transcribe").pairs
    assert [(p.split, p.group) for p in pairs] == [("train", "en-us"), ("test", "en-rp"), ("test", "en-rp")]
    stamp = (folder / "clips.json").stat().st_mtime_ns
    load_sample("spoken-phrases")
    assert (folder / "clips.json").stat().st_mtime_ns == stamp  # read from the cache, not made again


def test_without_espeak_ng_the_message_says_how_to_install_it(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="samples:spoken-phrases is synthesised with the espeak-ng program.*apt-get"):
        load_sample("spoken-phrases")
