"""Session-wide pytest hooks."""

from __future__ import annotations

from scanner import native


def pytest_report_header() -> str:
    built = [module for module in native.MODULES if native.compiled(module)]
    if not built:
        return "compiled modules: none, all from source (no `make native`)"
    return f"compiled by mypyc: {', '.join(built)}"
