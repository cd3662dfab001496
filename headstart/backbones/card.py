"""A backbone's card: what it is (embedding size, preprocessing), known without building it.

Some sources can tell these facts only by loading the model (a sentence-transformers folder: its pooling, dense
layers and maximum length are settled by the library's own loading code). The first build writes them to a small
JSON card under `$HEADSTART_CACHE/backbones/`, keyed by a fingerprint of everything they can depend on:

- the spec string (options such as `?max_length=` and `?init=random` included),
- every file of the model folder: path, size and modification time, and the content of every file under 1 MiB
  (configs, vocabularies, tokenizers), so an edited config is a new fingerprint even within the same second,
- the versions of the libraries that read the folder (their defaults may change).

A later `create_backbone` with the same fingerprint reads the card instead of loading the model; the model is built
on first real use, and its facts are checked against the card then (a mismatch deletes the card and stops). The
weights themselves are identified as before (`weights_id`), so the feature cache key is exactly as safe as without
cards: a card never stands in for the weights, only for facts about the architecture and preprocessing.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from headstart.errors import BackboneError
from headstart.paths import atomic_file, cache_root

log = logging.getLogger(__name__)

SMALL_FILE = 1 << 20  # files below this size are fingerprinted by content, larger ones (weights) by size and time
CARD_VERSION = 1


def fingerprint(spec: str, folder: Path, packages: Iterable[str]) -> str:
    """A hash of the spec, the folder's files and the packages' versions (see the module docstring)."""
    from importlib.metadata import PackageNotFoundError, version

    h = hashlib.sha256(f"card-v{CARD_VERSION}\0{spec}\0".encode())
    for name in sorted(packages):
        try:
            h.update(f"{name}={version(name)}\0".encode())
        except PackageNotFoundError:
            h.update(f"{name}=none\0".encode())
    root = Path(folder).resolve()
    h.update(f"{root}\0".encode())
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        st = path.stat()
        h.update(f"{path.relative_to(root)}:{st.st_size}:{st.st_mtime_ns}\0".encode())
        if st.st_size < SMALL_FILE:
            h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()[:32]


def card_path(key: str) -> Path:
    return cache_root() / "backbones" / f"{key}.json"


def read_card(key: str) -> dict[str, Any] | None:
    """The facts saved under `key`, or None when there are none (or they cannot be read)."""
    path = card_path(key)
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        log.warning("backbone card %s is unreadable; the model will be loaded to rebuild it", path)
        return None
    return card.get("facts") if isinstance(card, dict) and card.get("version") == CARD_VERSION else None


def write_card(key: str, spec: str, facts: dict[str, Any]) -> None:
    """Save `facts` under `key`; a card that cannot be written only costs a model load next time."""
    try:
        with atomic_file(card_path(key)) as f:
            json.dump({"version": CARD_VERSION, "spec": spec, "facts": facts}, f, indent=1, sort_keys=True)
    except OSError as exc:
        log.warning("cannot write backbone card %s (%s)", card_path(key), exc)


def check_card(key: str, spec: str, card: dict[str, Any], actual: dict[str, Any]) -> None:
    """Stop when a built model disagrees with its card (the card is deleted, so the next run is right)."""
    if card == actual:
        return
    card_path(key).unlink(missing_ok=True)
    raise BackboneError(
        f"{spec}: the model's facts {actual} differ from those noted when it was last loaded {card}; the note is "
        f"deleted: run the command again"
    )
