"""Which build of the DNS codec runs: mypyc's extension or wire.py itself.

``make native`` compiles scanner/resolve/wire.py with mypyc into an extension
module beside it. Python's import system prefers an extension to a source
file of the same name, so ``import scanner.resolve.wire`` then loads the
compiled build, with no switch anywhere in the scanner. Both builds are one
source: what differs is only speed (the compiled one spends about a third
less CPU per message, benchmarks/bench_wire.py). The tests compare the two,
which is what this module is for.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

from scanner.resolve import wire

SOURCE = Path(__file__).with_name("wire.py")
_SOURCE_MODULE = "scanner.resolve._wire_source"


def compiled() -> bool:
    """Whether ``scanner.resolve.wire`` is the compiled extension."""
    return Path(wire.__file__ or "").suffix != ".py"


def source_codec() -> ModuleType:
    """wire.py executed from its source, even where the extension shadows it.

    A module of its own (its classes are not the extension's), loaded once.
    """
    loaded = sys.modules.get(_SOURCE_MODULE)
    if loaded is not None:
        return loaded
    spec = importlib.util.spec_from_file_location(_SOURCE_MODULE, SOURCE)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {SOURCE}")
    module = importlib.util.module_from_spec(spec)
    # Registered before it runs: its dataclasses look their module up there.
    sys.modules[_SOURCE_MODULE] = module
    spec.loader.exec_module(module)
    return module
