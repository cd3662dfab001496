"""`samples:spoken-phrases`: short English phrases spoken by espeak-ng in twelve voices, with their transcripts.

A paired sample for speech to text (`--task transcribe`): 48 made-up phrases of 2-6 common words, each clip at a
seeded, jittered speaking rate. The fixed split holds out whole voices: four test voices (one per accent family)
never speak in training, and twelve of the phrases are said only by them, so the test set has phrases the model
heard in training (from other voices) and phrases it never heard at all. Every clip's group is its voice.

Synthesised once into the headstart cache (`<cache>/samples/spoken-phrases-<recipe hash>/`, built in a temporary
folder and renamed into place), then reused: 16 kHz mono 16-bit WAV, about 1-2.5 s each. Needs the espeak-ng
program; without it, loading says how to install it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from headstart.data.dataset import Dataset

SOURCE = "samples:spoken-phrases"
SAMPLE_RATE = 16_000
PHRASES: tuple[str, ...] = (
    "open the door",
    "close the window please",
    "the water is cold",
    "my bag is on the chair",
    "turn off the lights",
    "we walk to school every day",
    "bring me a cup of tea",
    "the dog is sleeping",
    "she reads a long book",
    "put the box on the table",
    "the train leaves at noon",
    "call me after lunch",
    "the sky is very blue",
    "he plays the old piano",
    "wash your hands first",
    "the shop opens early",
    "we need more bread",
    "the baby is laughing",
    "keep the garden green",
    "my brother likes fish",
    "the road is wet today",
    "write your name here",
    "the music is too loud",
    "they sing in the car",
    "the cat sat by the fire",
    "pick up the red pen",
    "the bus was late again",
    "we eat dinner at home",
    "the river runs fast",
    "take a small step",
    "her coat is black",
    "the clock stopped at night",
    "please speak more slowly",
    "the milk is in the fridge",
    "he found his keys",
    "the birds fly south",
    "a warm summer evening",
    "the children play outside",
    "clean the kitchen floor",
    "the moon is bright tonight",
    "my phone needs more power",
    "we planted three trees",
    "the tea is too hot",
    "send the letter today",
    "the boat left the harbour",
    "she painted the wall white",
    "the wind moves the leaves",
    "good morning to you all",
)
TEST_PHRASES = frozenset(range(36, 48))  # the last twelve: spoken by the test voices only
# (voice name, espeak-ng voice[+variant], split). Test voices: one of each accent family the training voices cover.
VOICES: tuple[tuple[str, str, str], ...] = (
    ("en-us", "en-us", "train"),
    ("en-gb", "en-gb", "train"),
    ("en-gb-f2", "en+f2", "train"),  # "en-gb+f2" ignores the variant in espeak-ng 1.51
    ("en-scotland", "en-gb-scotland", "train"),
    ("en-caribbean-f4", "en-029+f4", "train"),
    ("en-rp", "en-gb-x-rp", "train"),
    ("en-lancaster", "en-gb-x-gbclan", "train"),
    ("en-us-m3", "en-us+m3", "train"),
    ("en-us-f3", "en-us+f3", "test"),
    ("en-scotland-m3", "en-gb-scotland+m3", "test"),
    ("en-caribbean", "en-029", "test"),
    ("en-westmidlands-f1", "en-gb-x-gbcwmd+f1", "test"),
)
RATE_WPM = (140, 185)  # each clip's speaking rate, drawn uniformly (seeded)
PITCH = (35, 65)
RECIPE_VERSION = 1


def sample_folder() -> Path:
    """Where the synthesised clips live: a name that changes whenever the recipe does."""
    from headstart.paths import cache_root

    recipe = json.dumps([RECIPE_VERSION, SAMPLE_RATE, PHRASES, sorted(TEST_PHRASES), VOICES, RATE_WPM, PITCH])
    return cache_root() / "samples" / f"spoken-phrases-{hashlib.sha256(recipe.encode()).hexdigest()[:12]}"


def load_spoken_phrases() -> Dataset:
    """The sample set, synthesised on first use: items are clips, `target` their transcripts, `split` the fixed
    train/test split, group = voice."""
    from headstart.data.spoken_digits import cached_clips

    folder = sample_folder()
    clips = cached_clips(folder, SOURCE, _build)
    return Dataset(
        modality="audio",
        items=[folder / c["file"] for c in clips],
        targets={"target": [c["text"] for c in clips], "split": [c["split"] for c in clips]},
        where=[f"{SOURCE}/{c['file']}" for c in clips],
        source=SOURCE,
        groups=[c["voice"] for c in clips],
    )


def clip_plan() -> list[dict]:
    """Every clip to synthesise: voice, phrase, rate and pitch (seeded), split."""
    rng = np.random.default_rng(RECIPE_VERSION)
    plan = []
    for voice, espeak_voice, split in VOICES:
        for index, text in enumerate(PHRASES):
            rate, pitch = int(rng.integers(*RATE_WPM)), int(rng.integers(*PITCH))
            if split == "train" and index in TEST_PHRASES:
                continue
            name = f"{voice}/{index:02d}.wav"
            plan.append({"file": name, "text": text, "voice": voice, "espeak": espeak_voice, "split": split,
                         "rate": rate, "pitch": pitch, "phrase": index})  # fmt: skip
    return plan


def _build(folder: Path) -> None:
    from headstart.data.spoken_digits import espeak_command, speak
    from headstart.paths import atomic_dir

    exe = espeak_command(SOURCE)
    plan = clip_plan()
    with atomic_dir(folder) as tmp:
        for clip in plan:
            speak(exe, clip["espeak"], clip["rate"], clip["pitch"], clip["text"], tmp / clip["file"], SOURCE)
        (tmp / "clips.json").write_text(json.dumps(plan, indent=1))
