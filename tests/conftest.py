"""Session-wide pytest hooks."""

from __future__ import annotations

from scanner.resolve import native


def pytest_report_header() -> str:
    build = "compiled by mypyc" if native.compiled() else "Python source (no `make native`)"
    return f"DNS codec (scanner/resolve/wire.py): {build}"
