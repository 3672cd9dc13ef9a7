"""Whom a scan contacts, watched from the mail hosts' side: an address or a
domain on ``--exclude`` and a special-purpose address that is not allowed
(RFC 6890; the testbed's are loopback ones) see no connection, neither from
``scan`` nor from ``scan check``; with the testbed's ``scan_args`` the same
hosts are reached, so the watching works.

A testbed of its own on net 203 (no Postfix, no IPv6: it runs beside the
shared one), whose responder logs every connection (``testbed connections``).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import duckdb
import pytest

from testbed.connlog import FLUSH_INTERVAL
from tests.integration.support import Testbed, module_testbed, run_module, scan_options

pytestmark = pytest.mark.testbed

NET = 203


small = module_testbed("contact", net=NET, domains=300, seed=5)


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_module("scanner.cli", *args)


def connections(tb: Testbed) -> dict[str, int]:
    """Connections each mail address has seen so far (`testbed connections`)."""
    time.sleep(3 * FLUSH_INTERVAL)  # the responder flushes its log this often
    done = run_module(
        "testbed.cli", "connections", "--dir", str(tb.directory), "--json", timeout=60
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    return {row["address"]: row["connections"] for row in summary["per_address"]}


def checked_address(tb: Testbed, domain: str) -> str:
    """The one address of the domain's MX host, from a `scan check` allowed
    to reach it; it must have answered."""
    proc = cli("check", domain, *scan_options(tb), *tb.scan_args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    found = re.findall(rf"^\s+(127\.{NET}\.\d+\.\d+): STARTTLS ok", proc.stdout, re.MULTILINE)
    assert len(found) == 1, proc.stdout
    return found[0]


@pytest.fixture(scope="module")
def three(small: Testbed) -> list[tuple[str, str]]:
    """Three DANE-EE domains with a mail address each of their own."""
    domains = [str(row["domain"]) for row in small.by_scenario("ee_311")]
    for scenario in ("ee_301", "ee_312", "ee_300", "ee_310"):
        domains += [str(row["domain"]) for row in small.by_scenario(scenario)]
    picked: list[tuple[str, str]] = []
    for domain in domains:
        address = checked_address(small, domain)
        if address not in {a for _, a in picked}:
            picked.append((domain, address))
        if len(picked) == 3:
            return picked
    pytest.fail(f"fewer than three DANE-EE domains with addresses of their own: {picked}")


def test_scan_check_honours_exclude_and_reserves_what_is_not_allowed(
    small: Testbed, three: list[tuple[str, str]], tmp_path: Path
) -> None:
    (domain, address), (other, _), _ = three
    exclude = tmp_path / "optout.txt"
    exclude.write_text(f"# opted out\n{address}\n{other}\n")
    before = connections(small)
    assert before.get(address, 0) >= 1  # reached by checked_address: the log shows it

    by_address = cli(
        "check", domain, *scan_options(small), *small.scan_args, "--exclude", str(exclude)
    )
    assert f"{address}: blocked (on the exclusion list)" in by_address.stdout, by_address.stdout
    assert by_address.returncode == 1, by_address.stdout  # no host tested: undetermined
    by_name = cli("check", other, *scan_options(small), *small.scan_args, "--exclude", str(exclude))
    assert ": blocked (on the exclusion list)" in by_name.stdout, by_name.stdout
    # Without the testbed's allowed range its loopback addresses are reserved.
    reserved = cli("check", domain, *scan_options(small))
    assert f"{address}: reserved (special-purpose address (loopback" in reserved.stdout
    assert "--allow-range" in reserved.stdout

    assert connections(small) == before


def test_scan_honours_exclude_and_reserves_what_is_not_allowed(
    small: Testbed, three: list[tuple[str, str]], tmp_path: Path
) -> None:
    (by_address, address), (by_name, name_address), (control, control_address) = three
    listed = tmp_path / "domains.txt"
    listed.write_text(f"{by_address}\n{by_name}\n{control}\n")
    exclude = tmp_path / "optout.txt"
    exclude.write_text(f"{address}\n*.{by_name}\n{by_name}\n")

    before = connections(small)
    done = cli(str(listed), "-o", str(tmp_path / "a"), *scan_options(small), *small.scan_args,
               "--exclude", str(exclude), "-q")  # fmt: skip
    assert done.returncode == 0, done.stderr
    after = connections(small)
    assert after.get(address, 0) == before.get(address, 0)
    assert after.get(name_address, 0) == before.get(name_address, 0)
    assert after[control_address] > before.get(control_address, 0)  # the watch sees scans
    assert statuses(tmp_path / "a") == {
        by_address: ["blocked"],
        by_name: ["blocked"],
        control: ["tls_ok"],
    }

    # Not allowed: nothing of the testbed is contacted, every address is reserved.
    done = cli(str(listed), "-o", str(tmp_path / "b"), *scan_options(small), "-q")
    assert done.returncode == 0, done.stderr
    assert connections(small) == after
    assert set(map(tuple, statuses(tmp_path / "b").values())) == {("reserved",)}


def statuses(output: Path) -> dict[str, list[str]]:
    """Per domain, the SMTP status of every address of its MX hosts."""
    rows = (
        duckdb.connect()
        .execute(
            f"""
        SELECT domain, list_sort(flatten([[a.smtp_status FOR a IN h.addresses]
                                          FOR h IN mx_hosts]))
        FROM '{output}/part-*.parquet'
        """
        )
        .fetchall()
    )
    return {domain: list(found) for domain, found in rows}
