"""scanner.resolve.managed: which root files the managed Unbound starts from."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from scanner.resolve import managed
from scanner.resolve.managed import RootFiles, root_files, unbound_config

DEBIAN_KEY = Path("/usr/share/dns/root.key")
DEBIAN_HINTS = Path("/usr/share/dns/root.hints")


@pytest.fixture
def system(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """dns-root-data's files, as if installed (under tmp_path)."""
    key, hints = tmp_path / "root.key", tmp_path / "root.hints"
    key.write_text(". IN DS 20326 8 2 E06D44B8...\n")
    hints.write_text(".  3600000  NS  A.ROOT-SERVERS.NET.\n")
    monkeypatch.setattr(managed, "SYSTEM_TRUST_ANCHORS", (tmp_path / "missing.key", key))
    monkeypatch.setattr(managed, "SYSTEM_ROOT_HINTS", (hints,))
    return key, hints


def test_the_real_root_by_default(system: tuple[Path, Path]) -> None:
    key, hints = system
    assert root_files(None, None) == RootFiles(key, hints)


def test_a_private_root_gets_no_system_hints(system: tuple[Path, Path]) -> None:
    # The testbed's anchor with the real root's servers would make every answer bogus.
    assert root_files(Path("/tb/root.ds"), None) == RootFiles(Path("/tb/root.ds"), None)
    given = RootFiles(Path("/tb/root.ds"), Path("/tb/root.hints"))
    assert root_files(given.trust_anchor, given.root_hints) == given


def test_given_hints_with_the_system_anchor(system: tuple[Path, Path]) -> None:
    key, _ = system
    assert root_files(None, Path("/my.hints")) == RootFiles(key, Path("/my.hints"))


def test_nothing_installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(managed, "SYSTEM_TRUST_ANCHORS", (tmp_path / "root.key",))
    monkeypatch.setattr(managed, "SYSTEM_ROOT_HINTS", (tmp_path / "root.hints",))
    assert root_files(None, None) == RootFiles(None, None)  # "no trust anchor"


def test_the_defaults_are_debians_dns_root_data() -> None:
    assert managed.SYSTEM_TRUST_ANCHORS[0] == DEBIAN_KEY
    assert managed.SYSTEM_ROOT_HINTS == (DEBIAN_HINTS,)


@pytest.mark.skipif(
    not DEBIAN_KEY.exists() or shutil.which("unbound-checkconf") is None,
    reason="needs dns-root-data and unbound (make setup installs both)",
)
def test_installed_files_make_a_configuration_unbound_accepts(tmp_path: Path) -> None:
    """What `make setup` installs is what a scan of the real internet starts
    from; checked offline (unbound-checkconf sends no query)."""
    files = root_files(None, None)
    assert files == RootFiles(DEBIAN_KEY, DEBIAN_HINTS)
    assert files.trust_anchor is not None
    conf = tmp_path / "unbound.conf"
    conf.write_text(unbound_config(tmp_path, 5353, files.trust_anchor, files.root_hints, 1))
    text = conf.read_text()
    assert str(DEBIAN_HINTS) in text
    assert str(DEBIAN_KEY) in text
    checked = subprocess.run(
        ["unbound-checkconf", str(conf)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
