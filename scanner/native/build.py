"""Building the compiled modules (``python -m scanner.native``, ``make native``)."""

from __future__ import annotations

import argparse
import ast
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from scanner.native import GROUP, MANIFEST, MODULES, ROOT, source_digest, source_path

# -- what a build depends on ---------------------------------------------------------


def _imported(path: Path, root: Path) -> set[str]:
    """The scanner modules ``path`` imports (any depth of the tree, any form)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from scanner import names` imports a module, `from scanner.x import y` one too
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        for name in names:
            if name.startswith("scanner.") and source_path(name, root).exists():
                found.add(name)
    return found


def dependencies(modules: Iterable[str], root: Path = ROOT) -> list[Path]:
    """The sources of ``modules`` and of the scanner modules they import,
    transitively, relative to ``root``."""
    todo, seen = list(modules), set()
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        todo += _imported(source_path(module, root), root)
    return sorted(source_path(module, root).relative_to(root) for module in seen)


def record(modules: Sequence[str], root: Path = ROOT) -> None:
    """Write ``MANIFEST``: the modules built and the hash of each source they depend on."""
    sources = {str(path): source_digest(root / path) for path in dependencies(modules, root)}
    manifest = {"modules": list(modules), "sources": sources}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


# -- building ---------------------------------------------------------------------


def remove(root: Path = ROOT) -> None:
    """Delete every extension under scanner/ and the manifest."""
    for path in (root / "scanner").rglob("*.so"):
        path.unlink()
    (root / MANIFEST).unlink(missing_ok=True)


def build(modules: Sequence[str] = MODULES) -> None:
    """Compile ``modules`` in place (what ``make native`` runs), after
    removing any earlier build: an extension of a module no longer built
    would otherwise shadow its source, linked to a library rebuilt without it."""
    # Build-time only: the scanner itself never imports mypyc or setuptools.
    from mypyc.build import mypycify
    from setuptools import setup

    remove()
    os.chdir(ROOT)
    paths = [str(source_path(module).relative_to(ROOT)) for module in modules]
    setup(
        name="danescan-native",
        ext_modules=mypycify(paths, group_name=GROUP),
        script_args=["build_ext", "--inplace"],
    )
    record(modules)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="compile the scanner's hot modules with mypyc")
    parser.add_argument(
        "--leave-out",
        action="append",
        default=[],
        choices=MODULES,
        metavar="MODULE",
        help="build without MODULE (to measure what compiling it gains)",
    )
    parser.add_argument("--remove", action="store_true", help="delete the build and build nothing")
    args = parser.parse_args(argv)
    if args.remove:
        remove()
        return
    build([module for module in MODULES if module not in args.leave_out])
