"""Audio for the audio tests. Tones, the tones folder and the tiny Hugging Face audio models live in tests/conftest.py
(the backbone contract uses them too); `tone` and `write_wav` are imported here for the files that import them from
this module. The espeak-ng sample set is skipped where espeak-ng is not installed."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import tone, write_wav

__all__ = ["tone", "write_wav"]


@pytest.fixture
def make_wav() -> Callable[..., Path]:
    return write_wav


@pytest.fixture(scope="session")
def spoken_digits():
    """samples:spoken-digits, synthesised once per session into the session's cache."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng); samples:spoken-digits needs it")
    from headstart.data import load_data

    return load_data("samples:spoken-digits")
