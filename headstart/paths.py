"""Where headstart keeps things on disk, and how it writes them without ever leaving a half-written file."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def cache_root() -> Path:
    """`$HEADSTART_CACHE`, default `~/.cache/headstart`. When it is a remote URL (`s3://...`: the feature cache on
    object storage, see `headstart.storage`), what is kept locally (backbone cards, samples) stays in the default."""
    value = os.environ.get("HEADSTART_CACHE") or ""
    if value.startswith("file://"):
        value = value[len("file://") :]
    elif "://" in value:
        value = ""
    return Path(value or Path.home() / ".cache" / "headstart").expanduser()


@contextlib.contextmanager
def atomic_file(path: Path, mode: str = "w") -> Iterator:
    """Write to a temporary file beside `path`, then rename it into place; on error, `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_dir(path: Path) -> Iterator[Path]:
    """Fill a temporary folder beside `path`, then swap it into place; on error, an existing `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            os.replace(path, old)
        os.replace(tmp, path)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
