"""Where a dataset lives: a local (or shared, mounted) folder, or any location
fsspec opens (``s3://bucket/scan``, ``gs://...``, ``memory://...``).

Every file of a dataset (parts, the manifest, a cluster scan's split) is
published whole or not at all, which is what lets ``--resume`` trust what it
finds after a kill:

- A local folder: written to a temporary name, flushed to disk (fsync) and
  renamed over the final name, then the folder itself synced.
- An object store: an object is written by one request (a PUT, or a
  multipart upload completed at the end), and readers see either the old
  object or the new one, never part of one. The bytes are therefore
  gathered in memory first and sent on success only: a file object of
  fsspec commits what was written even when the block it is closed in
  raised.
- Any other fsspec filesystem (sftp, smb, ...): written to a temporary
  name and moved over the final one, which those filesystems do by rename.

Names inside a dataset are relative and use ``/`` (``_tasks/task-0001.txt``).
Which store a location gets is decided here only (:func:`open_store`).
"""

from __future__ import annotations

import contextlib
import io
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

# fsspec protocols that publish an object whole on a single write.
_OBJECT_STORES = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "oci", "tos", "memory"}
)
_LOCAL = frozenset({"file", "local"})
_PROBE = ".danescan-write-test"


class DatasetStore(ABC):
    """The files of one dataset, by their names relative to its root."""

    location: str  # as the user wrote it: for messages

    def describe(self, name: str = "") -> str:
        """``name`` as a person should see it in a message."""
        return f"{self.location.rstrip('/')}/{name}" if name else self.location

    @abstractmethod
    def prepare(self) -> None:
        """Create the dataset's root if needed and check that it takes files
        (raises OSError, with the reason, when it does not)."""

    @abstractmethod
    def list(self, folder: str = "") -> list[str]:
        """Names of the files directly in ``folder`` (relative to the root), sorted."""

    @abstractmethod
    def exists(self, name: str) -> bool: ...

    @abstractmethod
    def open_read(self, name: str) -> IO[bytes]:
        """Raises FileNotFoundError when there is no such file."""

    @abstractmethod
    def open_write(self, name: str) -> contextlib.AbstractContextManager[IO[bytes]]:
        """A file published whole under ``name`` when the block ends without
        an exception, and not at all otherwise (nothing is left behind)."""

    @abstractmethod
    def remove(self, name: str) -> None:
        """Remove a file; nothing when there is none."""

    def read_bytes(self, name: str) -> bytes:
        with self.open_read(name) as handle:
            return handle.read()

    def write_bytes(self, name: str, data: bytes) -> None:
        with self.open_write(name) as handle:
            handle.write(data)

    def rewrite_in_place(self, name: str, data: bytes) -> None:
        """Replace ``name`` without a second copy on disk: the last resort of
        a full local disk. Where there is no disk to fill, a normal write."""
        self.write_bytes(name, data)


class LocalStore(DatasetStore):
    """A folder of this machine's file system (a shared mount included)."""

    def __init__(self, root: Path, location: str | None = None) -> None:
        self.root = root
        self.location = location if location is not None else str(root)

    def __repr__(self) -> str:
        return f"LocalStore({self.root!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LocalStore) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)

    def path(self, name: str) -> Path:
        return self.root / name

    def describe(self, name: str = "") -> str:
        return str(self.path(name)) if name else self.location

    def prepare(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        probe = self.root / _PROBE
        probe.write_bytes(b"")
        probe.unlink()

    def list(self, folder: str = "") -> list[str]:
        base = self.path(folder)
        try:
            entries = sorted(entry.name for entry in os.scandir(base) if entry.is_file())
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [f"{folder.rstrip('/')}/{e}" if folder else e for e in entries]

    def exists(self, name: str) -> bool:
        return self.path(name).is_file()

    def open_read(self, name: str) -> IO[bytes]:
        return self.path(name).open("rb")

    @contextlib.contextmanager
    def open_write(self, name: str) -> Iterator[IO[bytes]]:
        path = self.path(name)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        try:
            with tmp.open("wb") as out:
                yield out
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(path)
        finally:
            with contextlib.suppress(OSError):  # never instead of the error that got here
                tmp.unlink(missing_ok=True)
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)

    def rewrite_in_place(self, name: str, data: bytes) -> None:
        # No rename, so a crash in the middle could leave the file torn.
        with self.path(name).open("r+b") as out:
            out.write(data)
            out.truncate()
            out.flush()
            os.fsync(out.fileno())


class FsspecStore(DatasetStore):
    """A location fsspec opens. Pickles as its URL (a Dask worker opens the
    filesystem again, with its own credentials and configuration)."""

    def __init__(self, url: str) -> None:
        import fsspec.core  # only scans to such locations need fsspec

        self.location = url
        self._fs, root = fsspec.core.url_to_fs(url)
        self._root = root.rstrip("/")
        protocols = self._fs.protocol
        protocols = (protocols,) if isinstance(protocols, str) else tuple(protocols)
        self._whole_objects = bool(_OBJECT_STORES.intersection(protocols))

    def __reduce__(self) -> tuple[Any, ...]:
        return (FsspecStore, (self.location,))

    def __repr__(self) -> str:
        return f"FsspecStore({self.location!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, FsspecStore) and other.location == self.location

    def __hash__(self) -> int:
        return hash(self.location)

    def _path(self, name: str) -> str:
        return f"{self._root}/{name}" if name else self._root

    def prepare(self) -> None:
        self._fs.makedirs(self._root, exist_ok=True)
        probe = self._path(_PROBE)
        self._fs.pipe_file(probe, b"")
        self._fs.rm_file(probe)

    def list(self, folder: str = "") -> list[str]:
        base = self._path(folder)
        try:
            found = self._fs.ls(base, detail=True, refresh=True)
        except (FileNotFoundError, NotADirectoryError):
            return []
        names = sorted(
            str(entry["name"]).rstrip("/").rsplit("/", 1)[-1]
            for entry in found
            if entry.get("type") == "file"
        )
        return [f"{folder.rstrip('/')}/{n}" if folder else n for n in names]

    def exists(self, name: str) -> bool:
        try:
            return bool(self._fs.isfile(self._path(name)))
        except FileNotFoundError:
            return False

    def open_read(self, name: str) -> IO[bytes]:
        return self._fs.open(self._path(name), "rb")  # type: ignore[no-any-return]

    @contextlib.contextmanager
    def open_write(self, name: str) -> Iterator[IO[bytes]]:
        buffer = io.BytesIO()
        yield buffer
        path = self._path(name)
        parent = path.rsplit("/", 1)[0]
        if self._whole_objects:
            self._fs.pipe_file(path, buffer.getvalue())
            return
        self._fs.makedirs(parent, exist_ok=True)
        tmp = f"{parent}/.{path.rsplit('/', 1)[-1]}.tmp"
        try:
            self._fs.pipe_file(tmp, buffer.getvalue())
            self._fs.mv(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                if self._fs.exists(tmp):
                    self._fs.rm_file(tmp)

    def remove(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm_file(self._path(name))


def open_store(location: str | os.PathLike[str]) -> DatasetStore:
    """The store of a dataset location: a local path (or a ``file://`` URL)
    is a LocalStore, any other URL goes to fsspec."""
    text = os.fspath(location)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return LocalStore(Path(text), text)
    if scheme.lower() in _LOCAL:
        return LocalStore(Path(rest), text)
    return FsspecStore(text)


Where = DatasetStore | str | os.PathLike[str]  # a store, or a location to open one at


def as_store(where: Where) -> DatasetStore:
    return where if isinstance(where, DatasetStore) else open_store(where)
