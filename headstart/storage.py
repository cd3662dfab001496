"""Where headstart reads and writes shared things: a local folder, or any fsspec URL (s3://, gs://, file://, ...).

`open_storage(location)` gives a `Storage` rooted there. Local paths (and `file://` URLs) take the plain-pathlib
route, so nothing is slower for people on one machine; any other URL goes through fsspec, imported only then.

Every write is atomic to readers: a key is either absent or whole. On a local disk (and any fsspec file system
with a real rename) the bytes go to a unique temporary name first, then are renamed into place; on an object store
(S3, GCS, Azure, memory) one PUT of the final key is atomic already, multipart uploads included, so they are
written in place. A temporary name starts with `.`, so listings never show it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path
from typing import Any, BinaryIO

from headstart.errors import HeadstartError
from headstart.paths import atomic_file

OBJECT_STORES = frozenset({"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "memory"})  # a PUT is atomic there


class StorageError(HeadstartError):
    """A cache or output location that cannot be reached or used (a missing bucket, no credentials, no network)."""


def is_remote(location: str | Path) -> bool:
    """Whether `location` is a URL other than `file://` (which is a local path)."""
    text = str(location)
    return "://" in text and not text.startswith("file://")


def join(location: str | Path, *names: str) -> str | Path:
    """`location` / `names`, as a Path for a local place and as a URL (with `/`) for a remote one."""
    if is_remote(location):
        return "/".join([str(location).rstrip("/"), *names])
    return Path(local_path(location)).joinpath(*names)


def local_path(location: str | Path) -> Path:
    """A local path or `file://` URL as a Path."""
    text = str(location)
    return Path(text[len("file://") :] if text.startswith("file://") else text).expanduser()


class Storage:
    """Keys (relative names with `/`) under one root. The local and fsspec routes below share this interface."""

    root: str

    def list(self, prefix: str, suffix: str = "") -> list[str]:
        """Keys in the folder `prefix` ending with `suffix`, sorted; never a temporary (dot-named) key."""
        raise NotImplementedError

    def read_bytes(self, key: str) -> bytes:
        raise NotImplementedError

    def write_bytes(self, key: str, data: bytes) -> None:
        """Write the whole of `key` atomically: readers see the old value (or nothing) until it is complete."""
        raise NotImplementedError

    def put_file(self, local: Path, key: str) -> None:
        """Upload (or copy) the local file `local` to `key`, atomically as `write_bytes` does."""
        raise NotImplementedError

    def get_file(self, key: str, local: Path) -> None:
        """Download (or copy) `key` to the local file `local`."""
        raise NotImplementedError

    def open(self, key: str) -> BinaryIO:
        """`key` opened for reading, as a binary file object (FileNotFoundError when it is absent)."""
        raise NotImplementedError

    def exists(self, key: str) -> bool:
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove `key` if it is there."""
        raise NotImplementedError

    def local(self, key: str) -> Path | None:
        """The key's local path when the storage is a local folder (read it in place), else None."""
        return None

    def url(self, key: str) -> str:
        """The key as the user would write it, for messages."""
        return f"{self.root.rstrip('/')}/{key}"


class LocalStorage(Storage):
    """A local folder, through pathlib and `os.replace`."""

    def __init__(self, root: str | Path) -> None:
        self.path = local_path(root)
        self.root = str(self.path)

    def list(self, prefix: str, suffix: str = "") -> list[str]:
        folder = self.path / prefix
        if not folder.is_dir():
            return []
        names = sorted(p.name for p in folder.iterdir() if p.name.endswith(suffix) and not p.name.startswith("."))
        return [f"{prefix}/{n}" if prefix else n for n in names]

    def read_bytes(self, key: str) -> bytes:
        return (self.path / key).read_bytes()

    def write_bytes(self, key: str, data: bytes) -> None:
        with atomic_file(self.path / key, "wb") as f:
            f.write(data)

    def put_file(self, local: Path, key: str) -> None:
        target = self.path / key
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            shutil.copyfile(local, tmp)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)

    def get_file(self, key: str, local: Path) -> None:
        shutil.copyfile(self.path / key, local)

    def open(self, key: str) -> BinaryIO:
        return open(self.path / key, "rb")

    def exists(self, key: str) -> bool:
        return (self.path / key).exists()

    def delete(self, key: str) -> None:
        (self.path / key).unlink(missing_ok=True)

    def local(self, key: str) -> Path | None:
        return self.path / key


class FsspecStorage(Storage):
    """Any fsspec file system; options for it (endpoint, credentials) come from fsspec's own configuration and the
    usual environment variables (`AWS_ENDPOINT_URL`, `AWS_ACCESS_KEY_ID`, ...)."""

    def __init__(self, url: str, **options: Any) -> None:
        try:
            import fsspec
        except ImportError as exc:
            raise StorageError(f"{url}: object storage needs fsspec; pip install 'headstart[ray]'") from exc
        self.root = url.rstrip("/")
        try:
            self.fs, self._path = fsspec.core.url_to_fs(self.root, **options)
        except (ImportError, ValueError) as exc:
            raise StorageError(f"{url}: cannot open this location ({exc}); for s3:// pip install s3fs") from exc
        protocols = self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,)
        self.atomic_put = bool(OBJECT_STORES.intersection(protocols))

    def _full(self, key: str) -> str:
        return f"{self._path.rstrip('/')}/{key}" if key else self._path

    def list(self, prefix: str, suffix: str = "") -> list[str]:
        with self._reaching(prefix):
            try:
                found = self.fs.ls(self._full(prefix), detail=False, refresh=True)
            except FileNotFoundError:
                return []
        names = sorted(p.rstrip("/").rsplit("/", 1)[-1] for p in found)
        return [f"{prefix}/{n}" if prefix else n for n in names if n.endswith(suffix) and not n.startswith(".")]

    def read_bytes(self, key: str) -> bytes:
        with self._reaching(key):
            return self.fs.cat_file(self._full(key))

    def write_bytes(self, key: str, data: bytes) -> None:
        with self._reaching(key):
            if self.atomic_put:
                self.fs.pipe_file(self._full(key), data)
            else:
                tmp = self._temporary(key)
                self.fs.pipe_file(tmp, data)
                self.fs.mv(tmp, self._full(key))

    def put_file(self, local: Path, key: str) -> None:
        with self._reaching(key):
            if self.atomic_put:
                self.fs.put_file(str(local), self._full(key))
            else:
                tmp = self._temporary(key)
                self.fs.put_file(str(local), tmp)
                self.fs.mv(tmp, self._full(key))

    def get_file(self, key: str, local: Path) -> None:
        with self._reaching(key):
            self.fs.get_file(self._full(key), str(local))

    def open(self, key: str) -> BinaryIO:
        with self._reaching(key):
            return self.fs.open(self._full(key), "rb")

    def exists(self, key: str) -> bool:
        with self._reaching(key):
            return bool(self.fs.exists(self._full(key)))

    def delete(self, key: str) -> None:
        with self._reaching(key), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._full(key))

    def check(self) -> None:
        """Reach the root once: StorageError when the endpoint cannot be reached or (object stores) the bucket is
        missing. A missing prefix is fine: writing creates it."""
        if self.atomic_put:
            bucket = self._path.split("/", 1)[0]
            try:
                with self._reaching(""):
                    self.fs.ls(bucket, detail=False, refresh=True)
            except FileNotFoundError:
                raise StorageError(
                    f"{self.root}: the bucket {bucket!r} does not exist (or is not visible to you)"
                ) from None
        self.list("")

    def _temporary(self, key: str) -> str:
        head, _, name = self._full(key).rpartition("/")
        return f"{head}/.{name}.{uuid.uuid4().hex[:12]}.tmp"

    @contextlib.contextmanager
    def _reaching(self, key: str) -> Any:
        """Network and permission failures as one StorageError naming the URL; a missing key stays FileNotFoundError
        (callers treat it as absent)."""
        try:
            yield
        except FileNotFoundError:
            raise
        except (OSError, PermissionError, TimeoutError) as exc:
            raise StorageError(f"{self.url(key)}: cannot be reached ({_reason(exc)})") from None
        except Exception as exc:  # botocore / aiohttp errors that are no OSError: unreachable endpoints, credentials
            if type(exc).__module__.split(".")[0] in ("botocore", "aiohttp", "aiobotocore", "urllib3", "gcsfs"):
                raise StorageError(f"{self.url(key)}: cannot be reached ({_reason(exc)})") from None
            raise


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def open_storage(location: str | Path, *, check: bool = False) -> Storage:
    """A Storage rooted at `location` (a local folder or an fsspec URL). With `check`, a remote root is reached once
    now, so an unreachable bucket is one clear StorageError before any work starts."""
    if not is_remote(location):
        return LocalStorage(location)
    store = FsspecStorage(str(location))
    if check:
        store.check()
    return store
