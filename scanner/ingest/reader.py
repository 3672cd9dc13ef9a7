"""Reading domain lists: a file or ``-`` for standard input, plain or
compressed (gzip, bzip2, xz, zstd, recognised by their magic bytes), one name
per line or CSV with a domain column (Tranco's headerless ``rank,domain``, or
any CSV whose header names a ``domain`` column). Comments (``#``) and blank
lines are skipped. The input is streamed: memory does not grow with its size.
"""

from __future__ import annotations

import bz2
import contextlib
import csv
import gzip
import io
import lzma
import sys
import zlib
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

import zstandard

from scanner.ingest.normalise import Normalised, normalise

_MAGIC = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
)


MAX_LINE = 4096  # characters; longer lines are reported, not read whole


class InputError(Exception):
    """The input as a whole cannot be read (missing file, corrupt compression)."""


@dataclass(frozen=True, slots=True)
class InputName:
    """One name of the input with its line number and what normalising made of it."""

    line: int
    raw: str
    result: Normalised


@contextlib.contextmanager
def open_input(source: str) -> Iterator[io.BufferedIOBase]:
    """``source`` (a path or ``-``) as a binary stream, decompressed if needed."""
    with contextlib.ExitStack() as stack:
        if source == "-":
            raw = cast(io.BufferedReader, sys.stdin.buffer)
        else:
            try:
                raw = stack.enter_context(Path(source).open("rb"))
            except OSError as exc:
                raise InputError(f"cannot read {source}: {exc.strerror}") from None
        head = raw.peek(8)[:8]
        kind = next((kind for magic, kind in _MAGIC if head.startswith(magic)), None)
        yield raw if kind is None else stack.enter_context(_decompressor(kind, raw))


def _decompressor(kind: str, raw: io.BufferedReader) -> io.BufferedIOBase:
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw)
    if kind == "bzip2":
        return bz2.BZ2File(raw)
    if kind == "xz":
        return lzma.LZMAFile(raw)
    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))


def read_names(source: str) -> Generator[InputName, None, None]:
    """Every name of ``source`` in order, normalised; never raises for a bad line."""
    with open_input(source) as stream:
        text = io.TextIOWrapper(
            cast(BinaryIO, stream), encoding="utf-8", errors="replace", newline=""
        )
        try:
            yield from _names(_lines(text))
        # Each decompressor's own error for a corrupt stream (gzip raises
        # zlib.error from inside a deflate block, OSError for its header).
        except (OSError, EOFError, zlib.error, lzma.LZMAError, zstandard.ZstdError) as exc:
            raise InputError(f"cannot read {source}: {exc}") from None
        finally:
            # Detach so that closing the wrapper never closes standard input.
            text.detach()


def _lines(text: io.TextIOBase) -> Iterator[str]:
    """Physical lines, each cut at MAX_LINE characters: a file without newlines
    (a binary, a runaway export) must not be read into memory whole."""
    while line := text.readline(MAX_LINE):
        if len(line) == MAX_LINE and not line.endswith("\n"):
            while (rest := text.readline(MAX_LINE)) and not rest.endswith("\n"):
                pass  # skip the remainder of the over-long line
        yield line


def _names(text: Iterable[str]) -> Iterator[InputName]:
    column: int | None = None  # None until the first data line says whether it is CSV
    for number, line in enumerate(text, start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if column is None:
            column, is_header = _csv_column(stripped)
            if is_header:
                continue
        if column >= 0:
            fields = next(csv.reader([stripped]))
            value = fields[column] if column < len(fields) else ""
        else:
            value = stripped
        yield InputName(number, value, normalise(value))


def _csv_column(first: str) -> tuple[int, bool]:
    """(-1, False) for a plain list; else the domain column and whether ``first`` is a header."""
    if "," not in first:
        return -1, False
    fields = [f.strip().lower() for f in next(csv.reader([first]))]
    if "domain" in fields:
        return fields.index("domain"), True
    # Tranco and Alexa style: rank first, name last, no header.
    return len(fields) - 1, False
