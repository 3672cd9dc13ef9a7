"""The import rules of ARCHITECTURE.md, checked over the source tree.

Each rule names what it forbids; a failure lists every import that breaks it,
by file and line, so that a change which moves a boundary moves ARCHITECTURE.md
with it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STAGES = ("ingest", "resolve", "handshake", "match", "output")
# Code with no I/O: no sockets, no event loop, no clock of its own.
PURE = (
    "scanner/match",
    "scanner/handshake/smtp.py",
    "scanner/resolve/wire.py",
    "scanner/resolve/message.py",
    "scanner/resolve/dnsname.py",
    "scanner/resolve/answer.py",
    "scanner/resolve/settings.py",
    "scanner/resolve/policy.py",
    "scanner/resolve/health.py",
    "scanner/ingest/normalise.py",
    "scanner/assemble.py",
    "scanner/mailpolicy.py",
    "scanner/effective.py",
    "scanner/tlsrpt.py",
    "scanner/mtasts/record.py",
    "scanner/mtasts/policy.py",
    "scanner/mtasts/patterns.py",
    "scanner/mtasts/response.py",
    "scanner/flow.py",
    "scanner/tlsa.py",
    "scanner/names.py",
    "scanner/seen.py",
    "scanner/lost.py",
    "scanner/cluster/owners.py",
)
IMPURE = ("asyncio", "socket", "ssl", "selectors", "subprocess", "time", "uvloop", "os")


def imports(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line, module, at top level) of every import in ``path``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name, id(node) in top
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.lineno, node.module, id(node) in top


def sources(where: str) -> list[Path]:
    path = ROOT / where
    return sorted(path.rglob("*.py")) if path.is_dir() else [path]


def where(path: Path, line: int, module: str) -> str:
    return f"{path.relative_to(ROOT)}:{line} imports {module}"


def test_the_rules_see_the_tree() -> None:
    assert len(sources("scanner")) > 40
    assert all(p.exists() for w in PURE for p in sources(w)), "a PURE entry moved"


def test_the_product_imports_neither_the_testbed_nor_the_analysis() -> None:
    broken = [
        where(path, line, module)
        for path in sources("scanner")
        for line, module, top in imports(path)
        if module.split(".")[0] in ("testbed", "analysis", "tests")
        # `scan report` runs the analysis package, loaded only by that command
        and not (path.name == "cli.py" and module.startswith("analysis") and not top)
    ]
    assert broken == []


@pytest.mark.parametrize("stage", STAGES)
def test_a_stage_does_not_import_another(stage: str) -> None:
    others = tuple(f"scanner.{s}" for s in STAGES if s != stage)
    broken = [
        where(path, line, module)
        for path in sources(f"scanner/{stage}")
        for line, module, _ in imports(path)
        if module.startswith(others)
    ]
    assert broken == []


@pytest.mark.parametrize("pure", PURE)
def test_pure_code_does_no_io(pure: str) -> None:
    broken = [
        where(path, line, module)
        for path in sources(pure)
        for line, module, _ in imports(path)
        if module.split(".")[0] in IMPURE
    ]
    assert broken == []


def test_dask_is_only_the_cluster_packages_and_loaded_only_for_a_cluster_scan() -> None:
    """A scan without --cluster needs no Dask (an optional extra): only
    scanner/cluster imports it, and the rest of the product imports
    scanner.cluster only inside the functions of a cluster scan (run.py
    for --cluster, cli.py for cluster-certs)."""
    broken = [
        where(path, line, module)
        for path in sources("scanner")
        for line, module, top in imports(path)
        if (module.split(".")[0] in ("distributed", "dask") and "cluster" not in path.parts)
        or (module.startswith("scanner.cluster") and "cluster" not in path.parts and top)
    ]
    assert broken == []


def test_the_analysis_does_not_import_the_testbed() -> None:
    broken = [
        where(path, line, module)
        for path in sources("analysis")
        for line, module, _ in imports(path)
        if module.split(".")[0] in ("testbed", "tests")
    ]
    assert broken == []
