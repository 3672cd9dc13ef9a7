"""The compiled build: which modules mypyc compiles, building them, and
telling which build runs.

``make native`` (``python -m scanner.native``) compiles ``MODULES`` with
mypyc into extension modules beside their sources, sharing one library
(scanner/_native__mypyc*.so). Python's import system prefers an extension to
a source file of the same name, so importing any of them loads the compiled
build, with no switch anywhere in the scanner. Each module is one source for
both builds: only speed differs (benchmarks/RESULTS.md: the DNS codec
2.1-2.5x; the Discoverer with its policy and cache about a quarter less
CPU per domain over an in-memory client).

Compiled are the resolve stage's per-query and per-domain code: the DNS
codec, the DNS client, the RFC 7672 policy, the Discoverer and the
single-flight cache, and the status enums they compare with (compiled code
looks up a member of an interpreted enum as a Python attribute, about 900
instructions each, 12,000 per query before scanner.status was compiled). A
compiled class cannot be subclassed from Python: to watch or replay what the
Discoverer asks, wrap a DnsClient in another ``discover.Asker`` (the tests
and benchmarks do). Timings on this machine move too much to show a tenth;
instruction counts do not (valgrind, benchmarks/RESULTS.md): compiling the
client took a warm resolve pass from 142,000 to 118,000 instructions per
query, which timing had called noise. The tests compare the codec's two
builds (``source_module``) and check that no build is older than its source.
Python profilers (py-spy, pyinstrument) see no lines inside a compiled
module; to profile one line by line, delete its extension (``make clean``
removes them all) and run from source.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
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


def source_path(module: str) -> Path:
    return ROOT.joinpath(*module.split(".")).with_suffix(".py")


def extension_path(module: str) -> Path:
    """Where ``make native`` puts the compiled ``module`` (it may not exist)."""
    source = source_path(module)
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


def build() -> None:
    """Compile ``MODULES`` in place (what ``make native`` runs)."""
    # Build-time only: the scanner itself never imports mypyc or setuptools.
    from mypyc.build import mypycify
    from setuptools import setup

    os.chdir(ROOT)
    paths = [str(source_path(module).relative_to(ROOT)) for module in MODULES]
    setup(
        name="danescan-native",
        ext_modules=mypycify(paths, group_name=_GROUP),
        script_args=["build_ext", "--inplace"],
    )
    # setuptools leaves an unchanged extension with its old time, and the
    # freshness test compares times with the sources.
    for module in MODULES:
        extension_path(module).touch()


if __name__ == "__main__":
    build()
