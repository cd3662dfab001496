"""`samples:spoken-digits`: the words "zero".."nine" spoken by espeak-ng in many voices, accents, speeds and pitches.

Synthesised once into the headstart cache (`<cache>/samples/spoken-digits-<recipe hash>/`, built in a temporary folder
and renamed into place), then reused. 16 kHz mono 16-bit WAV, about 0.5-1 s each. Every clip carries its voice as its
group, so `split` holds out whole voices: the test score measures generalisation to voices never heard in training.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

from headstart.data.dataset import Dataset
from headstart.errors import DataError

SOURCE = "samples:spoken-digits"
SAMPLE_RATE = 16_000
WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# (voice name, espeak-ng voice[+variant]): English accents and variants, and four non-English voices reading the
# English words (accented speech). No two voices may render a word identically, or the split by voice would leak
# (tests/audio checks that every clip's content is unique).
VOICES: tuple[tuple[str, str], ...] = (
    ("en-us", "en-us"),
    ("en-us-f3", "en-us+f3"),
    ("en-gb", "en-gb"),
    ("en-gb-f2", "en+f2"),  # "en-gb+f2" ignores the variant in espeak-ng 1.51 (identical to en-gb)
    ("en-scotland", "en-gb-scotland"),
    ("en-scotland-m3", "en-gb-scotland+m3"),
    ("en-caribbean", "en-029"),
    ("en-caribbean-f4", "en-029+f4"),
    ("en-rp", "en-gb-x-rp"),
    ("en-rp-m7", "en-gb-x-rp+m7"),
    ("en-lancaster", "en-gb-x-gbclan"),
    ("en-westmidlands-f1", "en-gb-x-gbcwmd+f1"),
    ("it-m1", "it+m1"),  # not en-us-nyc: espeak-ng 1.51 speaks 17 of these 20 clips identically to en-us
    ("de-m2", "de+m2"),
    ("fr-f3", "fr+f3"),
    ("es-m4", "es+m4"),
)
STYLES: tuple[tuple[int, int], ...] = ((145, 40), (185, 65))  # (words per minute, pitch 0..99)
RECIPE_VERSION = 2


def sample_folder() -> Path:
    """Where the synthesised clips live: a name that changes whenever the recipe does."""
    from headstart.paths import cache_root

    recipe = json.dumps([RECIPE_VERSION, SAMPLE_RATE, WORDS, VOICES, STYLES]).encode()
    return cache_root() / "samples" / f"spoken-digits-{hashlib.sha256(recipe).hexdigest()[:12]}"


def load_spoken_digits() -> Dataset:
    """The sample set, synthesised on first use; label "0".."9", group = voice."""
    folder = sample_folder()
    clips = cached_clips(folder, SOURCE, _build)
    return Dataset(
        modality="audio",
        items=[folder / c["file"] for c in clips],
        targets={"label": [c["label"] for c in clips]},
        where=[f"{SOURCE}/{c['file']}" for c in clips],
        source=SOURCE,
        groups=[c["voice"] for c in clips],
    )


def espeak_command(source: str = SOURCE) -> str:
    """The espeak-ng program's path; a DataError saying how to install it names `source`, the sample needing it."""
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise DataError(
            f"{source} is synthesised with the espeak-ng program, which is not installed; "
            "install it (Debian/Ubuntu: apt-get install espeak-ng; macOS: brew install espeak-ng)"
        )
    return exe


def cached_clips(folder: Path, source: str, build: Callable[[Path], None]) -> list[dict[str, Any]]:
    """The clip list (`clips.json`) of a synthesised sample in `folder`, built first when missing."""
    if not (folder / "clips.json").is_file():
        build(folder)
    try:
        return json.loads((folder / "clips.json").read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{source}: the cached copy in {folder} is damaged ({exc}); delete that folder") from None


def speak(exe: str, voice: str, speed: int, pitch: int, text: str, path: Path, source: str = SOURCE) -> None:
    """`text` spoken by espeak-ng (`voice`, words per minute, pitch 0..99) into `path` as 16 kHz mono 16-bit WAV."""
    import soundfile as sf

    from headstart.data.audio import read_audio

    path.parent.mkdir(parents=True, exist_ok=True)
    raw = path.with_name(f".{path.name}.raw.wav")
    cmd = [exe, "-v", voice, "-s", str(speed), "-p", str(pitch), "-w", str(raw), text]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not raw.is_file():
        reason = (done.stderr or done.stdout).strip().splitlines()[:1]
        raise DataError(f"{source}: espeak-ng failed for voice {voice!r}: {reason}")
    sf.write(str(path), read_audio(raw, SAMPLE_RATE), SAMPLE_RATE, subtype="PCM_16")
    raw.unlink()


def _build(folder: Path) -> None:
    from headstart.paths import atomic_dir

    exe = espeak_command()
    clips = []
    with atomic_dir(folder) as tmp:
        for voice, espeak_voice in VOICES:
            for speed, pitch in STYLES:
                for digit, word in enumerate(WORDS):
                    name = f"{digit}/{voice}-s{speed}-p{pitch}.wav"
                    speak(exe, espeak_voice, speed, pitch, word, tmp / name)
                    clips.append({"file": name, "label": str(digit), "voice": voice, "speed": speed, "pitch": pitch})
        (tmp / "clips.json").write_text(json.dumps(clips, indent=1))
