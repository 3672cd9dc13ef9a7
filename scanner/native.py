"""The compiled build: which modules mypyc compiles, building them, telling
which build runs, and refusing a build older than its sources.

``make native`` (``python -m scanner.native``) compiles ``MODULES`` with
mypyc into extension modules beside their sources, sharing one library
(scanner/_native__mypyc*.so). Python's import system prefers an extension to
a source file of the same name, so importing any of them loads the compiled
build, with no switch anywhere in the scanner. Each module is one source for
both builds: only speed differs.

Compiled is only what a measured gain holds for: instructions per query of
a warm resolve pass (``benchmarks/bench_resolve.py --instructions``,
valgrind, deterministic to about 0.2%), counted with all modules compiled,
none, and each left out in turn (benchmarks/RESULTS.md, issue 17). A module
stays compiled when leaving it out costs more than 1% (five times the
count's own spread): the DNS codec, the DNS client and the status enums they
compare with (compiled code looks up a member of an interpreted enum as a
Python attribute, about 900 instructions each). A compiled class cannot be
subclassed from Python: to watch or replay what the Discoverer asks, wrap a
DnsClient in another ``discover.Asker`` (the tests and benchmarks do). The
tests compare the codec's two builds (``source_module``). Python profilers
(py-spy, pyinstrument) see no lines inside a compiled module; to profile one
line by line, remove the build (``python -m scanner.native --remove``,
which ``make clean`` does) and run from source.

A stale build is refused at import. The build records, in ``MANIFEST``, a
SHA-256 of the source of every compiled module and of every scanner module
they import (mypyc compiles against their types and may inline their
``Final`` constants). ``import scanner`` runs ``guard``: when a recorded hash
differs from its file's (or an extension has no record), every compiled
module is imported from its source instead, with a ``StaleBuildWarning``.
All of them, not only the edited one: the modules of one build call one
another's compiled code directly, so a source module beside compiled ones
would meet the old build's classes. Falling back rather than raising,
because the source is the truth and both builds behave alike: a scan from an
edited tree is right, only slower, and says so; under pytest (warnings are
errors there) the warning stops the run, so the suite never passes on a
build it does not test.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import os
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

MODULES = (
    "scanner.resolve.wire",
    "scanner.resolve.client",
    "scanner.resolve.policy",
    "scanner.resolve.discover",
    "scanner.cache",
    "scanner.status",
)
_GROUP = "scanner._native"  # the shared library's module name, less "__mypyc"
ROOT = Path(__file__).resolve().parent.parent
MANIFEST = Path("scanner", "_native_build.json")  # under the root: what was built, from what


class StaleBuildWarning(RuntimeWarning):
    """The compiled build does not match the sources: they run instead."""


def source_path(module: str, root: Path = ROOT) -> Path:
    path = root.joinpath(*module.split("."))
    package = path / "__init__.py"
    return package if package.exists() else path.with_suffix(".py")


def extension_path(module: str, root: Path = ROOT) -> Path:
    """Where the build puts the compiled ``module`` (it may not exist)."""
    source = source_path(module, root)
    return source.with_name(source.stem + importlib.machinery.EXTENSION_SUFFIXES[0])


def compiled(module: str) -> bool:
    """Whether ``module`` is imported from its compiled extension."""
    return Path(importlib.import_module(module).__file__ or "").suffix != ".py"


def source_module(module: str) -> ModuleType:
    """``module`` executed from its source, even where the extension shadows
    it: a module of its own (its classes are not the extension's), loaded once."""
    package, _, leaf = module.rpartition(".")
    name = f"{package}._{leaf}_source"
    loaded = sys.modules.get(name)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(name, source_path(module))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {source_path(module)}")
    loaded = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclasses look their module up there.
    sys.modules[name] = loaded
    spec.loader.exec_module(loaded)
    return loaded


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


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def record(modules: Sequence[str], root: Path = ROOT) -> None:
    """Write ``MANIFEST``: the modules built and the hash of each source they depend on."""
    sources = {str(path): _digest(root / path) for path in dependencies(modules, root)}
    manifest = {"modules": list(modules), "sources": sources}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")


def stale(root: Path = ROOT) -> tuple[list[str], str] | None:
    """The compiled modules under ``root`` and why they must not load, or None
    when there are none or they match their sources."""
    manifest_path = root / MANIFEST
    if not manifest_path.exists():
        built = [module for module in MODULES if extension_path(module, root).exists()]
        if built:
            return built, f"{MANIFEST} is missing: the build's sources are unknown"
        return None
    manifest = json.loads(manifest_path.read_text())
    modules: list[str] = manifest["modules"]
    changed = []
    for name, digest in manifest["sources"].items():
        path = root / name
        if not path.exists() or _digest(path) != digest:
            changed.append(name)
    if changed:
        return modules, f"{', '.join(changed)} changed since the build"
    return None


class _SourceFinder(importlib.abc.MetaPathFinder):
    """Finds ``modules`` as their source files, ahead of their extensions."""

    def __init__(self, modules: Iterable[str], root: Path) -> None:
        self._modules = frozenset(modules)
        self._root = root

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._modules:
            return None
        return importlib.util.spec_from_file_location(fullname, source_path(fullname, self._root))


def guard(root: Path = ROOT) -> None:
    """Refuse a stale build: import its modules from source, with a warning
    (``import scanner`` runs this, before any compiled module can load)."""
    refused = stale(root)
    if refused is None:
        return
    modules, why = refused
    sys.meta_path.insert(0, _SourceFinder(modules, root))
    warnings.warn(
        f"compiled build refused, running from source: {why} (rebuild: `make native`)",
        StaleBuildWarning,
        stacklevel=2,
    )


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
        ext_modules=mypycify(paths, group_name=_GROUP),
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


if __name__ == "__main__":
    main()
