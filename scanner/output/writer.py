"""The Parquet dataset of a scan: part files written atomically, and what a
resumed scan needs to know about the parts already there (the manifest is
scanner.output.manifest).

A part is written to a temporary name, flushed to disk and renamed, so a
part file either holds all of its rows or does not exist: after a kill -9 the
parts on disk are exactly the rows that are done, and ``--resume`` skips
them, losing and repeating nothing. A part that cannot be written (a full
disk) leaves no temporary file behind: its rows stay buffered, and a resumed
scan redoes them.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from scanner.output.rows import ROW_TYPE, Row
from scanner.output.schema import SCHEMA
from scanner.seen import KeySet, name_key

_PART = re.compile(r"part-(\d+)-(\d+)\.parquet\Z")


class UnreadablePart(Exception):
    """A part file of the dataset folder a scan resumes that cannot be read
    (analysis.load.DatasetError is the analysis's: no dataset to read)."""


def part_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("part-*.parquet") if _PART.match(p.name))


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


def part_number(path: Path) -> tuple[int, int]:
    """(worker or task, number) of a part file's name."""
    match = _PART.match(path.name)
    if match is None:
        raise ValueError(f"{path.name} is not a part file's name")
    return int(match.group(1)), int(match.group(2))


def read_done(directory: Path, parts: Iterable[Path] | None = None) -> Resumed:
    """Domains (and input-error lines) already written by earlier runs: in
    every part of ``directory``, or in ``parts`` only."""
    done = Resumed()
    for path in part_files(directory) if parts is None else parts:
        worker, number = part_number(path)
        done.next_part[worker] = max(done.next_part.get(worker, 0), number + 1)
        try:
            table = pq.read_table(path, columns=["domain", "input_line", "verdict"])
        except (OSError, pa.ArrowInvalid) as exc:
            raise UnreadablePart(f"{path} is not a readable part: {exc}") from None
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


def drop_transient(directory: Path) -> int:
    """Rewrite every part that holds rows left transient without them, for
    ``--retry-transient``: the domains are then not done, and the resumed
    scan looks them up again and writes their new rows. Each part is
    replaced atomically, so a kill at any point leaves either the old part
    or the new one, and a later ``--resume`` redoes whatever is missing.
    Returns the number of rows dropped. Parts of a scan from before the
    ``transient`` column have none."""
    dropped = 0
    for path in part_files(directory):
        try:
            if "transient" not in pq.read_schema(path).names:
                continue
            table = pq.read_table(path)
        except (OSError, pa.ArrowInvalid) as exc:
            raise UnreadablePart(f"{path} is not a readable part: {exc}") from None
        transient = table.column("transient").fill_null(False)
        count = pc.sum(transient).as_py() or 0
        if not count:
            continue
        _replace_part(path, table.filter(pc.invert(transient)))
        dropped += count
    return dropped


def _replace_part(path: Path, table: pa.Table) -> None:
    """Write ``table`` as the part ``path`` atomically and durably: either the
    old part or the new one is there after a crash, and a full disk is not
    left fuller by a half-written file."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with tmp.open("wb") as out:
            pq.write_table(table, out, compression="zstd")
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


class PartWriter:
    """Buffers rows and writes them as ``part-<worker>-<n>.parquet`` files.

    Rows are converted to an Arrow record batch every ``batch_rows`` rows, so
    what waits for the next part is Arrow memory (about 400 bytes per domain
    on the testbed) rather than nested Python objects (about 1.7 kB), and the
    cyclic garbage collector, which traverses every live container on each
    full collection, does not see a part's worth of rows.
    """

    def __init__(
        self, directory: Path, worker: int, *, first_part: int = 0, batch_rows: int = 1024
    ) -> None:
        self.directory = directory
        self.worker = worker
        self.batch_rows = batch_rows
        self._next = first_part
        self._pending: list[Row] = []
        self._batches: list[pa.RecordBatch] = []
        self._batched_rows = 0
        self._batched_bytes = 0
        self.written = 0
        self.parts: list[Path] = []
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

    def flush(self) -> Path | None:
        """Write the buffered rows as one part; None when there were none.

        Safe to call from two threads (a part being written in a worker
        thread when a cancelled scan flushes what is left): the second call
        waits and writes only rows the first did not.
        """
        with self._lock:
            return self._flush()

    def _flush(self) -> Path | None:
        self._seal()
        if not self._batches:
            return None
        table = pa.Table.from_batches(self._batches, schema=SCHEMA)
        path = self.directory / f"part-{self.worker:03d}-{self._next:06d}.parquet"
        # On failure the rows are still buffered, and the next flush (or a
        # resumed scan) writes them.
        _replace_part(path, table)
        self._next += 1
        self.written += table.num_rows
        self._batches = []
        self._batched_rows = self._batched_bytes = 0
        self.parts.append(path)
        return path
