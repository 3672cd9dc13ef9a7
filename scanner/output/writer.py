"""The Parquet dataset of a scan: part files written atomically, a manifest,
and what a resumed scan needs to know about the parts already there.

A part is written to a temporary name, flushed to disk and renamed, so a
part file either holds all of its rows or does not exist: after a kill -9 the
parts on disk are exactly the rows that are done, and ``--resume`` skips
them, losing and repeating nothing.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from scanner.output.rows import Row
from scanner.output.schema import SCHEMA, SCHEMA_VERSION

MANIFEST = "manifest.json"
_PART = re.compile(r"part-(\d+)-(\d+)\.parquet\Z")


class DatasetError(Exception):
    """A dataset folder that cannot be written or resumed."""


def part_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("part-*.parquet") if _PART.match(p.name))


@dataclass(slots=True)
class Resumed:
    """What the parts already in a folder hold."""

    domains: set[str] = field(default_factory=set)
    error_lines: set[int] = field(default_factory=set)  # input errors, by line
    next_part: dict[int, int] = field(default_factory=dict)  # worker -> next part number
    rows: int = 0


def read_done(directory: Path) -> Resumed:
    """Domains (and input-error lines) already written by earlier runs."""
    done = Resumed()
    for path in part_files(directory):
        match = _PART.match(path.name)
        assert match is not None
        worker, number = int(match.group(1)), int(match.group(2))
        done.next_part[worker] = max(done.next_part.get(worker, 0), number + 1)
        try:
            table = pq.read_table(path, columns=["domain", "input_line", "verdict"])
        except (OSError, pa.ArrowInvalid) as exc:
            raise DatasetError(f"{path} is not a readable part: {exc}") from None
        for domain, line, verdict in zip(
            table.column("domain").to_pylist(),
            table.column("input_line").to_pylist(),
            table.column("verdict").to_pylist(),
            strict=True,
        ):
            if verdict == "input_error":
                done.error_lines.add(line)
            else:
                done.domains.add(domain)
        done.rows += table.num_rows
    return done


class PartWriter:
    """Buffers rows and writes them as ``part-<worker>-<n>.parquet`` files."""

    def __init__(self, directory: Path, worker: int, *, first_part: int = 0) -> None:
        self.directory = directory
        self.worker = worker
        self._next = first_part
        self._rows: list[Row] = []
        self.written = 0
        self.parts: list[Path] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, row: Row) -> None:
        self._rows.append(row)

    def flush(self) -> Path | None:
        """Write the buffered rows as one part; None when there were none."""
        if not self._rows:
            return None
        table = pa.Table.from_pylist(self._rows, schema=SCHEMA)
        path = self.directory / f"part-{self.worker:03d}-{self._next:06d}.parquet"
        tmp = self.directory / f".{path.name}.tmp"
        with tmp.open("wb") as out:
            pq.write_table(table, out, compression="zstd")
            out.flush()
            os.fsync(out.fileno())
        tmp.replace(path)
        self._fsync_dir()
        self._next += 1
        self.written += len(self._rows)
        self._rows = []
        self.parts.append(path)
        return path

    def _fsync_dir(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_manifest(directory: Path, document: dict[str, Any]) -> None:
    """Write manifest.json atomically (it is rewritten as the scan progresses)."""
    body = {"schema_version": SCHEMA_VERSION, **document}
    tmp = directory / f".{MANIFEST}.tmp"
    tmp.write_text(json.dumps(body, indent=2, sort_keys=True, default=str) + "\n")
    tmp.replace(directory / MANIFEST)


def read_manifest(directory: Path) -> dict[str, Any] | None:
    path = directory / MANIFEST
    if not path.exists():
        return None
    try:
        document = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path} is not readable: {exc}") from None
    if not isinstance(document, dict):
        raise DatasetError(f"{path} is not a manifest")
    return document
