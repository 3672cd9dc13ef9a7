"""The Parquet dataset of a scan: part files written atomically, and what a
resumed scan needs to know about the parts already there (the manifest is
scanner.output.manifest; where the files live, scanner.output.store).

A part is published whole or not at all (a local folder: a temporary name,
fsync, rename; an object store: one write), so after a kill -9 the parts
there are exactly the rows that are done, and ``--resume`` skips them,
losing and repeating nothing. A part that cannot be written (a full disk)
leaves nothing behind: its rows stay buffered, and a resumed scan redoes
them.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scanner.output.rows import ROW_TYPE, Row
from scanner.output.schema import SCHEMA, SCHEMA_VERSION, VERSION_KEY
from scanner.output.store import DatasetStore, Where, as_store
from scanner.seen import KeySet, name_key

_T = TypeVar("_T")
_PART = re.compile(r"part-(\d+)-(\d+)\.parquet\Z")


class UnreadablePart(Exception):
    """A part file of the dataset folder a scan resumes that cannot be read
    (analysis.load.DatasetError is the analysis's: no dataset to read)."""


class OtherSchema(UnreadablePart):
    """A part written with another schema version than this scanner's: a
    resumed scan would write the dataset in two schemas, which DuckDB and
    pandas read by the first file's columns and polars refuses."""


def part_files(where: Where) -> list[str]:
    """Names of the dataset's part files, sorted."""
    return [name for name in as_store(where).list() if _PART.match(name)]


@dataclass(slots=True)
class Resumed:
    """What the parts already in a folder hold.

    ``domains`` holds the done domains by ``name_key`` in a compact KeySet
    (about 9 bytes per domain, not ~100 as a set of names): resuming a scan of
    a hundred million domains must not need gigabytes per worker.
    """

    domains: KeySet = field(default_factory=KeySet)
    error_lines: set[int] = field(default_factory=set)  # input errors, by line
    next_part: dict[int, int] = field(default_factory=dict)  # worker -> next part number
    rows: int = 0


def part_number(name: str) -> tuple[int, int]:
    """(worker or task, number) of a part file's name."""
    match = _PART.match(name)
    if match is None:
        raise ValueError(f"{name} is not a part file's name")
    return int(match.group(1)), int(match.group(2))


def _read_part(store: DatasetStore, name: str, columns: list[str] | None = None) -> pa.Table:
    return _read(store, name, lambda handle: pq.read_table(handle, columns=columns))


def _read(store: DatasetStore, name: str, read: Callable[[IO[bytes]], _T]) -> _T:
    """``read`` applied to part ``name``; UnreadablePart if it cannot be read."""
    try:
        with store.open_read(name) as handle:
            return read(handle)
    except (OSError, pa.ArrowInvalid) as exc:
        raise UnreadablePart(f"{store.describe(name)} is not a readable part: {exc}") from None


def check_schema(where: Where) -> None:
    """Raise OtherSchema unless every part was written with SCHEMA_VERSION.
    Reads the footers only; called before a resume changes anything."""
    store = as_store(where)
    for name in part_files(store):
        metadata = _read(store, name, pq.read_schema).metadata or {}
        version = metadata.get(VERSION_KEY, b"").decode(errors="replace") or "unknown"
        if version != SCHEMA_VERSION:
            raise OtherSchema(
                f"{store.describe(name)} was written with dataset schema {version}, and this "
                f"danescan writes schema {SCHEMA_VERSION}: one dataset holds one schema, so "
                "finish that scan with the danescan that began it, or scan into another -o"
            )


def read_done(where: Where, parts: Iterable[str] | None = None) -> Resumed:
    """Domains (and input-error lines) already written by earlier runs: in
    every part of the dataset, or in the parts named by ``parts`` only."""
    store = as_store(where)
    done = Resumed()
    for name in part_files(store) if parts is None else parts:
        worker, number = part_number(name)
        done.next_part[worker] = max(done.next_part.get(worker, 0), number + 1)
        table = _read_part(store, name, ["domain", "input_line", "verdict"])
        for domain, line, verdict in zip(
            table.column("domain").to_pylist(),
            table.column("input_line").to_pylist(),
            table.column("verdict").to_pylist(),
            strict=True,
        ):
            if verdict == "input_error":
                done.error_lines.add(line)
            else:
                done.domains.add(name_key(domain))
        done.rows += table.num_rows
    return done


def drop_transient(where: Where) -> int:
    """Rewrite every part that holds rows left transient without them, for
    ``--retry-transient``: the domains are then not done, and the resumed
    scan looks them up again and writes their new rows. Each part is
    replaced atomically, so a kill at any point leaves either the old part
    or the new one, and a later ``--resume`` redoes whatever is missing.
    Returns the number of rows dropped. Parts of a scan from before the
    ``transient`` column have none."""
    store = as_store(where)
    dropped = 0
    for name in part_files(store):
        table = _read_part(store, name)
        if "transient" not in table.column_names:
            continue
        transient = table.column("transient").fill_null(False)
        count = pc.sum(transient).as_py() or 0
        if not count:
            continue
        _replace_part(store, name, table.filter(pc.invert(transient)))
        dropped += count
    return dropped


def _replace_part(store: DatasetStore, name: str, table: pa.Table) -> None:
    """Write ``table`` as the part ``name``, whole or not at all: after a
    crash either the old part or the new one is there."""
    with store.open_write(name) as out:
        pq.write_table(table, out, compression="zstd")


class PartWriter:
    """Buffers rows and writes them as ``part-<worker>-<n>.parquet`` files.

    Rows are converted to an Arrow record batch every ``batch_rows`` rows, so
    what waits for the next part is Arrow memory (about 400 bytes per domain
    on the testbed) rather than nested Python objects (about 1.7 kB), and the
    cyclic garbage collector, which traverses every live container on each
    full collection, does not see a part's worth of rows.
    """

    def __init__(
        self, where: Where, worker: int, *, first_part: int = 0, batch_rows: int = 1024
    ) -> None:
        self.store = as_store(where)
        self.worker = worker
        self.batch_rows = batch_rows
        self._next = first_part
        self._pending: list[Row] = []
        self._batches: list[pa.RecordBatch] = []
        self._batched_rows = 0
        self._batched_bytes = 0
        self.written = 0
        self.parts: list[str] = []  # names of the parts written
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """Rows buffered for the next part."""
        return self._batched_rows + len(self._pending)

    @property
    def nbytes(self) -> int:
        """Arrow bytes buffered for the next part (rows not yet batched not counted)."""
        return self._batched_bytes

    def add(self, row: Row) -> None:
        self._pending.append(row)
        if len(self._pending) >= self.batch_rows:
            self._seal()

    def _seal(self) -> None:
        if not self._pending:
            return
        batch = pa.RecordBatch.from_struct_array(pa.array(self._pending, type=ROW_TYPE))
        self._pending = []
        self._batches.append(batch)
        self._batched_rows += batch.num_rows
        self._batched_bytes += batch.nbytes

    def flush(self) -> str | None:
        """Write the buffered rows as one part; None when there were none.

        Safe to call from two threads (a part being written in a worker
        thread when a cancelled scan flushes what is left): the second call
        waits and writes only rows the first did not.
        """
        with self._lock:
            return self._flush()

    def _flush(self) -> str | None:
        self._seal()
        if not self._batches:
            return None
        table = pa.Table.from_batches(self._batches, schema=SCHEMA)
        name = f"part-{self.worker:03d}-{self._next:06d}.parquet"
        # On failure the rows are still buffered, and the next flush (or a
        # resumed scan) writes them.
        _replace_part(self.store, name, table)
        self._next += 1
        self.written += table.num_rows
        self._batches = []
        self._batched_rows = self._batched_bytes = 0
        self.parts.append(name)
        return name
