"""DataLoader workers are forked only when decoding can overlap a later batch: a one-batch job (a prediction, a
server's request) is prepared in-process, so nothing forks from a threaded server."""

from __future__ import annotations

import pytest

import headstart.features.extract as extract
from headstart.backbones import create_backbone
from headstart.features import extract_features
from tests.conftest import digit_images, noise_images


@pytest.fixture
def asked_workers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    asked: list[int] = []
    real = extract.iter_batches

    def spy(*args, **kwargs):
        asked.append(kwargs["num_workers"])
        return real(*args, **kwargs)

    monkeypatch.setattr(extract, "iter_batches", spy)
    return asked


def eight_cpus(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine where images get several workers."""
    monkeypatch.setattr(extract.os, "cpu_count", lambda: 8)


def test_one_batch_of_images_forks_no_worker(asked_workers: list[int], monkeypatch: pytest.MonkeyPatch) -> None:
    eight_cpus(monkeypatch)
    bb = create_backbone("headstart:tiny-cnn")
    extract_features(bb, noise_images(5, (12, 12), 0), batch_size=8, cache=False, progress=False)
    assert asked_workers == [0]


def test_workers_only_past_one_batch_and_an_explicit_count_is_kept(
    asked_workers: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    eight_cpus(monkeypatch)
    bb = create_backbone("headstart:tiny-cnn")
    assert extract.workers_for(bb, 9, 8) == extract.default_workers(bb) == 4
    assert extract.workers_for(bb, 8, 8) == 0
    extract_features(bb, noise_images(9, (12, 12), 1), batch_size=8, cache=False, progress=False, num_workers=0)
    assert asked_workers == [0]  # an explicit count is kept


def test_the_server_predictor_never_forks(asked_workers: list[int], monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import headstart as hs
    from headstart.data import from_arrays
    from headstart.serve.predictor import load_predictor

    images, labels = digit_images(4)
    hs.fit(
        from_arrays(images, labels),
        backbone="headstart:tiny-cnn",
        out=tmp_path / "m",
        progress=False,
        baseline=False,
        strategy="probe",
    )
    asked_workers.clear()  # fit's own extraction is not the server's
    eight_cpus(monkeypatch)
    predictor = load_predictor(tmp_path / "m")
    items = noise_images(70, (16, 16, 3), 2)  # more than two extraction batches
    probabilities = predictor.probabilities(items)
    assert len(next(iter(probabilities.values()))) == 70
    assert asked_workers == [0]
