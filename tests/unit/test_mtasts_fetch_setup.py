"""The set-up of MTA-STS policy fetches: --pkix-ca, the context, the settings."""

from __future__ import annotations

import datetime as dt
import ssl
from pathlib import Path

import pytest

from scanner import cli
from scanner.config import ScanConfig
from scanner.handshake.contact import ContactPolicy
from scanner.mtasts.fetch import FetchSettings, PkixContextError, fetcher_for, pkix_context
from testbed.pki import KeyType, Pki, write_chain

EHLO = "scanner.example.org"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    pki = Pki(seed=1, now=dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
    write_chain(tmp_path, "root", [pki.ca("Setup Root", KeyType.ECDSA)])
    return tmp_path / "root.pem"


def test_the_option_reaches_the_config(root: Path) -> None:
    argv = ["-", "-o", "out", "--ehlo-name", EHLO, "--pkix-ca", str(root), "--pkix-ca", str(root)]
    config = cli._scan_config(cli._scan_parser().parse_args(argv))
    assert config.pkix_ca == (root, root)
    check = cli._check_parser().parse_args(["example.org", "--pkix-ca", str(root)])
    assert check.pkix_ca == [root]


@pytest.mark.parametrize("name", ["missing.pem", "."])
def test_an_unreadable_file_is_refused_at_once(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match=r"--pkix-ca .*: not a readable file"):
        ScanConfig(input="-", output=tmp_path, ehlo_name=EHLO, pkix_ca=(tmp_path / name,))


def test_the_context_trusts_the_extra_roots_beside_the_systems(root: Path) -> None:
    system = pkix_context()
    extra = pkix_context([root])
    assert extra.verify_mode is ssl.CERT_REQUIRED
    assert extra.check_hostname
    ours = (("commonName", "Setup Root"),)
    assert sum(ours in ca["subject"] for ca in extra.get_ca_certs()) == 1
    assert len(extra.get_ca_certs()) == len(system.get_ca_certs()) + 1


def test_a_file_that_is_no_pem_is_refused_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    with pytest.raises(PkixContextError, match=r"cannot load --pkix-ca .*bad\.pem"):
        pkix_context([bad])


def test_a_scan_builds_its_fetcher(tmp_path: Path, root: Path) -> None:
    config = ScanConfig(input="-", output=tmp_path, ehlo_name=EHLO, pkix_ca=(root,), timeout=5)
    fetcher = fetcher_for(config, ContactPolicy())
    assert (fetcher.open_connections, fetcher.stats.fetches) == (0, 0)


@pytest.mark.parametrize("change", [{"timeout": 0}, {"connect_timeout": -1}, {"max_bytes": -1}])
def test_settings_out_of_bounds(change: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="fetch timeouts"):
        FetchSettings(**change)  # type: ignore[arg-type]
