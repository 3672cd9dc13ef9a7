"""The compiled build (scanner.native, make native): present and current."""

from __future__ import annotations

import pytest

from scanner import native
from scanner.resolve import policy


@pytest.mark.parametrize("module", native.MODULES)
def test_no_compiled_build_is_older_than_its_source(module: str) -> None:
    built, source = native.extension_path(module), native.source_path(module)
    if not built.exists():
        assert not native.compiled(module)
        pytest.skip(f"{source.name} runs from source: no compiled build (make native)")
    assert native.compiled(module), f"{built.name} exists but is not what imports load"
    assert built.stat().st_mtime >= source.stat().st_mtime, (
        f"{built.name} is older than {source.name} and shadows it: run `make native`"
    )


def test_a_source_module_is_a_module_of_its_own() -> None:
    source = native.source_module(policy.__name__)
    assert source is not policy
    assert source is native.source_module(policy.__name__)  # loaded once
    assert source.__file__ == str(native.source_path(policy.__name__))
