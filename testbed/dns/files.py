"""File helpers of the DNS build: rewrite a file only when its text changes
(a rebuild that changes nothing leaves every file as it was), and read a
server's log from the offset where this start began."""

from __future__ import annotations

import contextlib
from pathlib import Path


def write_if_changed(path: Path, text: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.read_text() == text:
            return
    path.write_text(text)


def read_lines(path: Path, offset: int = 0) -> list[str]:
    try:
        with path.open("rb") as stream:
            stream.seek(offset)
            return stream.read().decode(errors="replace").splitlines()
    except FileNotFoundError:
        return []
