"""Audio data: folders, tables and arrays; bad files reported per file; decoding, windows, noise; group splits;
the espeak-ng sample set."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from headstart.data import from_arrays, load_data, split
from headstart.data.audio import active_power, add_noise, fit_window, load_audio, trim_silence, with_noise
from headstart.data.dataset import Dataset
from headstart.errors import DataError
from tests.audio.conftest import tone, write_wav


def test_folder_of_audio_classes(tones_dir: Path) -> None:
    ds = load_data(tones_dir)
    assert ds.modality == "audio"
    assert len(ds) == 20 and sorted(set(ds.labels)) == ["high", "low"]
    assert all(isinstance(p, Path) and p.is_absolute() for p in ds.items)
    assert ds.where[0].startswith("tones/high/")


def test_bad_audio_files_are_reported_per_file(tmp_path: Path) -> None:
    root = tmp_path / "clips"
    for i in range(2):
        write_wav(root / "a" / f"{i}.wav", tone(400, seed=i))
        write_wav(root / "b" / f"{i}.wav", tone(1800, seed=i))
    (root / "a" / "empty.wav").write_bytes(b"")
    (root / "a" / "words.wav").write_text("not audio at all")
    write_wav(root / "b" / "silent.wav", np.zeros(0, np.float32))
    write_wav(root / "b" / "nine.wav", np.zeros((800, 9), np.float32))
    write_wav(root / "b" / "slow.wav", tone(100, rate=500), rate=500)
    (root / "b" / "notes.xyz").write_text("x")
    good = good_copy = root / "a" / "0.wav"
    truncated = root / "a" / "cut.wav"
    truncated.write_bytes(good.read_bytes()[:30])
    assert good_copy.exists()

    ds = load_data(root)
    problems = {i.where: i.problem for i in ds.issues}
    assert len(ds) == 4
    assert problems["clips/a/empty.wav"] == "empty file (0 bytes)"
    assert problems["clips/a/words.wav"].startswith("not a readable audio file")
    assert problems["clips/a/cut.wav"].startswith(("not a readable audio file", "corrupt", "no audio samples"))
    assert problems["clips/b/silent.wav"] == "no audio samples (zero length)"
    assert problems["clips/b/nine.wav"] == "unsupported channel count 9 (expected 1..8)"
    assert problems["clips/b/slow.wav"].startswith("implausible sample rate 500 Hz")
    assert problems["clips/b/notes.xyz"] == "not an audio file (.xyz)"
    with pytest.raises(DataError, match=r"7 bad items \(strict mode\): clips/a/cut.wav: "):
        load_data(root, strict=True)


def test_table_of_audio_paths(tmp_path: Path) -> None:
    for i in range(3):
        write_wav(tmp_path / "wav" / f"{i}.wav", tone(300 + 100 * i, seed=i))
    (tmp_path / "clips.csv").write_text(
        "path,label\nwav/0.wav,a\nwav/1.wav,b\nwav/2.wav,a\nwav/missing.wav,b\nwav/0.txt,a\n"
    )
    ds = load_data(tmp_path / "clips.csv")
    assert ds.modality == "audio" and ds.labels == ["a", "b", "a"]
    assert [str(i) for i in ds.issues] == [
        f"clips.csv row 4: wav/missing.wav: audio file not found (looked for {(tmp_path / 'wav/missing.wav')})",
        "clips.csv row 5: wav/0.txt: not an audio file (.txt)",
    ]
    (tmp_path / "clips.jsonl").write_text('{"audio": "wav/1.wav", "label": "b"}\n')
    assert load_data(tmp_path / "clips.jsonl", modality="audio").items == [(tmp_path / "wav/1.wav").resolve()]
    (tmp_path / "texts.csv").write_text("text,label\nhello,a\n")
    with pytest.raises(DataError, match="no column of audio paths"):
        load_data(tmp_path / "texts.csv", modality="audio")


def test_in_memory_waveforms_and_paths(tones_dir: Path) -> None:
    waves = [tone(300, rate=16000), tone(2000, rate=16000)]
    ds = from_arrays(waves, ["low", "high"])
    assert ds.modality == "audio" and ds.items[0].dtype == np.float32
    paths = sorted(tones_dir.rglob("*.wav"))[:2]
    assert from_arrays([str(p) for p in paths], modality="audio").modality == "audio"
    bad = from_arrays([str(paths[0]), "nope.wav"], modality="audio")
    assert [str(i) for i in bad.issues] == ["item #1: nope.wav: audio file not found"]
    with pytest.raises(DataError, match="expected a 1-D waveform"):
        from_arrays([np.zeros((2, 3, 4))], modality="audio")


def test_decode_mixdown_resample_window_trim(tmp_path: Path) -> None:
    stereo = tone(440, seconds=1.0, rate=44100, channels=2)
    path = write_wav(tmp_path / "s.flac", stereo, rate=44100)
    wave = load_audio(path, 16000)
    assert wave.ndim == 1 and wave.dtype == np.float32
    assert abs(len(wave) - len(stereo) * 16000 / 44100) <= 1
    trimmed = trim_silence(wave, 16000)
    assert 15000 < len(trimmed) < 16800  # the 0.1 s of silence on each side is gone
    assert len(fit_window(trimmed, 8000)) == 8000 and len(fit_window(trimmed, 20000)) == 20000
    padded = fit_window(np.ones(4, np.float32), 8)
    assert padded.tolist() == [0, 0, 1, 1, 1, 1, 0, 0]
    noisy = add_noise(trimmed, 10.0, np.random.default_rng(0), 16000)
    snr = 10 * np.log10(active_power(trimmed, 16000) / np.mean((noisy - trimmed) ** 2))
    assert abs(snr - 10.0) < 0.3


def test_group_split_holds_out_whole_groups() -> None:
    n = 60
    ds = Dataset(
        modality="audio",
        items=[np.full(4, i, np.float32) for i in range(n)],
        targets={"label": [str(i % 3) for i in range(n)]},
        where=[f"#{i}" for i in range(n)],
        source="mem",
        groups=[f"voice{i // 6}" for i in range(n)],
    )
    train, test = split(ds, seed=3)
    assert set(train.groups).isdisjoint(test.groups)
    assert set(test.labels) == set(train.labels) == {"0", "1", "2"}
    assert 12 <= len(test) <= 24
    again = split(ds, seed=3)[1]
    assert again.where == test.where
    few, _ = split(ds, seed=3, labels_per_class=2)
    assert len(few) == 6 and set(few.groups) <= set(train.groups)
    one = Dataset("audio", ds.items, ds.targets, ds.where, "mem", groups=["v"] * n)
    with pytest.raises(DataError, match="all items belong to one group"):
        split(one)


def test_with_noise_keeps_labels_and_groups(tones_dir: Path) -> None:
    ds = load_data(tones_dir).subset([0, 1])
    ds.groups = ["g1", "g2"]
    noisy = with_noise(ds, 0.0, seed=1)
    assert noisy.labels == ds.labels and noisy.groups == ["g1", "g2"]
    assert noisy.where[0].endswith("+noise 0 dB") and noisy.items[0].dtype == np.float32
    assert np.array_equal(with_noise(ds, 0.0, seed=1).items[1], noisy.items[1])


def test_spoken_digits_sample(spoken_digits: Dataset) -> None:
    ds = spoken_digits
    assert ds.modality == "audio" and len(ds) == 320
    assert sorted(set(ds.labels)) == [str(d) for d in range(10)]
    assert len(set(ds.groups)) == 16
    import soundfile as sf

    info = sf.info(str(ds.items[0]))
    assert info.samplerate == 16000 and info.channels == 1
    assert load_data("samples:spoken-digits").fingerprint() == ds.fingerprint()  # reused, not rebuilt
    train, test = split(ds)
    assert set(train.groups).isdisjoint(test.groups) and set(test.labels) == set(train.labels)
    # no two voices render a clip identically: otherwise a held-out voice would be heard in training after all
    assert len(set(ds.content_hashes())) == len(ds)


def test_spoken_digits_without_espeak(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HEADSTART_CACHE", str(tmp_path))
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(DataError, match="apt-get install espeak-ng"):
        load_data("samples:spoken-digits")
    with pytest.raises(DataError, match="holds audio data, not image"):
        load_data("samples:spoken-digits", modality="image")


@pytest.mark.parametrize(("colour", "slope_db"), [("white", 0.0), ("pink", 15.0), ("brown", 30.0)])
def test_noise_has_its_colours_spectrum_at_the_asked_snr(colour: str, slope_db: float) -> None:
    """Power per frequency falls 0, 3 or 6 dB per octave: 5 octaves from 150 Hz to 4.8 kHz are 0, 15 or 30 dB."""
    wave = (0.3 * np.sin(2 * np.pi * 440 * np.arange(32000) / 16000)).astype(np.float32)
    noise = add_noise(wave, 10.0, np.random.default_rng(0), 16000, colour) - wave
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / 16000)
    low, high = power[(freqs > 100) & (freqs < 200)].mean(), power[(freqs > 3200) & (freqs < 6400)].mean()
    assert 10 * np.log10(low / high) == pytest.approx(slope_db, abs=2.0)
    assert 10 * np.log10(active_power(wave, 16000) / np.mean(noise**2)) == pytest.approx(10.0, abs=0.3)
    with pytest.raises(ValueError, match="noise colour must be one of white, pink, brown, not 'blue'"):
        add_noise(wave, 10.0, np.random.default_rng(0), 16000, "blue")


def test_with_noise_names_its_colour(tones_dir: Path) -> None:
    ds = load_data(tones_dir).subset([0, 1])
    pink = with_noise(ds, 5.0, seed=1, colour="pink")
    assert pink.where[0].endswith("+pink noise 5 dB") and pink.source.endswith("+pink noise 5 dB")
    assert not np.array_equal(pink.items[0], with_noise(ds, 5.0, seed=1).items[0])
