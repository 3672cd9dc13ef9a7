"""The compiled build (scanner.native, make native): current, and refused at
import when a source it was built from has changed since."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scanner import native
from scanner.native import build
from scanner.resolve import policy

WIRE = "scanner.resolve.wire"
# What a child prints: where the codec came from, and whether it has the edit.
PROBE = "import scanner.resolve.wire as w; print(w.__file__, hasattr(w, 'EDITED'))"


@pytest.mark.parametrize("module", native.MODULES)
def test_the_compiled_build_is_what_imports_load(module: str) -> None:
    # A stale build never gets here: `import scanner` refused it, and the
    # StaleBuildWarning is an error under pytest.
    assert native.stale() is None
    if not native.extension_path(module).exists():
        assert not native.compiled(module)
        pytest.skip(f"{module} runs from source: no compiled build (make native)")
    assert native.compiled(module), f"{module} is built but is not what imports load"


def test_a_source_module_is_a_module_of_its_own() -> None:
    source = native.source_module(policy.__name__)
    assert source is not policy
    assert source is native.source_module(policy.__name__)  # loaded once
    assert source.__file__ == str(native.source_path(policy.__name__))
    # Its imports are the source build too, and the shipped modules stay put.
    answer = native.source_module("scanner.resolve.answer")
    assert source.DnsAnswer is answer.DnsAnswer
    assert sys.modules[policy.__name__] is policy


def copy_tree(tmp_path: Path) -> Path:
    """The scanner package (and its build, if any) copied under ``tmp_path``."""
    shutil.copytree(
        native.ROOT / "scanner", tmp_path / "scanner", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def edit(root: Path, module: str) -> None:
    with native.source_path(module, root).open("a") as source:
        source.write("\nEDITED = True\n")


def child(root: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"PYTHONPATH": str(root), "PYTHONWARNINGS": "default"}
    return subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, cwd=root
    )


def test_the_build_records_every_source_it_depends_on(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    build.record(native.MODULES, root)
    assert native.stale(root) is None
    recorded = {str(path) for path in build.dependencies(native.MODULES, root)}
    # Imported by compiled modules, compiled against: in the record too.
    assert {"scanner/names.py", "scanner/fdlimit.py", "scanner/resolve/wire.py"} <= recorded
    edit(root, "scanner.fdlimit")
    refused = native.stale(root)
    assert refused is not None
    assert refused == (list(native.MODULES), "scanner/fdlimit.py changed since the build")


def test_an_extension_without_a_record_is_refused(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    (root / native.MANIFEST).unlink(missing_ok=True)
    native.extension_path(WIRE, root).write_bytes(b"not an extension")
    refused = native.stale(root)
    assert refused is not None
    assert WIRE in refused[0]
    assert "missing" in refused[1]


def test_an_edited_source_is_imported_instead_of_its_stale_extension(tmp_path: Path) -> None:
    """Edit a copy: the extension beside the edited source is refused. A
    stand-in extension does for a real one: it cannot load, so a child that
    imports the module without error did not load it."""
    root = copy_tree(tmp_path)
    build.remove(root)
    native.extension_path(WIRE, root).write_bytes(b"not an extension")
    build.record(native.MODULES, root)
    shadowed = child(root)
    assert shadowed.returncode != 0  # the import system prefers the extension
    assert "StaleBuildWarning" not in shadowed.stderr
    edit(root, WIRE)
    refused = child(root)
    assert refused.returncode == 0, refused.stderr
    assert refused.stdout.split() == [str(native.source_path(WIRE, root)), "True"]
    assert "StaleBuildWarning" in refused.stderr
    assert "scanner/resolve/wire.py changed since the build" in refused.stderr


@pytest.mark.skipif(
    not native.extension_path(WIRE).exists(),
    reason="no compiled build to copy (make native)",
)
def test_a_real_build_loads_until_its_source_is_edited(tmp_path: Path) -> None:
    root = copy_tree(tmp_path)
    fresh = child(root)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.split() == [str(native.extension_path(WIRE, root)), "False"]
    edit(root, WIRE)
    refused = child(root)
    assert refused.returncode == 0, refused.stderr
    assert refused.stdout.split() == [str(native.source_path(WIRE, root)), "True"]
    assert "StaleBuildWarning" in refused.stderr
