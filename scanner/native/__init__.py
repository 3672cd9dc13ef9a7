"""The compiled build: which modules mypyc compiles, building them, telling
which build runs, and refusing a build older than its sources.

``make native`` (``python -m scanner.native``: scanner.native.build)
compiles ``MODULES`` with mypyc into extension modules beside their sources, sharing one library
(scanner/_native__mypyc*.so). Python's import system prefers an extension to
a source file of the same name, so importing any of them loads the compiled
build, with no switch anywhere in the scanner. Each module is one source for
both builds: only speed differs.

Compiled is what a measured gain holds for: instructions per query of a
warm resolve pass (``benchmarks/bench_resolve.py --instructions``, valgrind,
repeatable to about 0.2% since its child runs with one OpenBLAS thread and a
fixed hash seed), counted with all modules compiled, none, and each left out
in turn (``python -m scanner.native --leave-out MODULE``; benchmarks/
RESULTS.md, issue 17). The rule: a module stays compiled when leaving it out
costs more than 1% of the count (five times its spread between runs).
Every module here clears it: left out, the codec (message, dnsname, wire,
answer; one module before issue 17) costs 76% more instructions per query,
the client 25%, the status enums 16% (compiled code looks up a member of an
interpreted enum as a Python attribute, about 900 instructions each), the
policy 11%, the Discoverer 7%, the cache 1.2-1.5%. ``scanner.names`` and
the client's settings are compiled because the compiled modules call them
per query: interpreted, they cost 5.7%. A compiled class cannot be
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

import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import json
import sys
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

MODULES = (
    "scanner.resolve.message",
    "scanner.resolve.dnsname",
    "scanner.resolve.wire",
    "scanner.resolve.answer",
    "scanner.resolve.client",
    "scanner.resolve.policy",
    "scanner.resolve.discover",
    "scanner.resolve.settings",
    "scanner.cache",
    "scanner.status",
    "scanner.names",
)
GROUP = "scanner._native"  # the shared library's module name, less "__mypyc"
ROOT = Path(__file__).resolve().parent.parent.parent
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
    it: a module of its own (its classes are not the extension's), loaded
    once. Every compiled module is loaded so, at once, importing one
    another: a source codec calling compiled name decoding would not be the
    source build."""
    package, _, leaf = module.rpartition(".")
    alias = f"{package}._{leaf}_source"
    loaded = sys.modules.get(alias)
    if loaded is not None:
        return loaded
    shipped = {name: importlib.import_module(name) for name in MODULES}
    for name in MODULES:
        del sys.modules[name]
    finder = _SourceFinder(MODULES, ROOT)
    sys.meta_path.insert(0, finder)
    try:
        # Under their own names while they run: dataclasses look their module
        # up in sys.modules, and imports between them must find one another.
        for name in MODULES:
            importlib.import_module(name)
    finally:
        sys.meta_path.remove(finder)
        for name, shipped_module in shipped.items():
            parent, _, child = name.rpartition(".")
            source = sys.modules.pop(name, None)
            if source is not None:
                sys.modules[f"{parent}._{child}_source"] = source
            sys.modules[name] = shipped_module
            # `from package import child` reads the package's attribute.
            setattr(sys.modules[parent], child, shipped_module)
    return sys.modules[alias]


def source_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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
        if not path.exists() or source_digest(path) != digest:
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
