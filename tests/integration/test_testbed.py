"""The simulated internet, checked with independent tools: dig for DNSSEC, and
OpenSSL's own DANE implementation (`openssl s_client -dane_tlsa_rrdata`) for
every DANE scenario against truth.parquet."""

from __future__ import annotations

import ipaddress
import json
import re
import smtplib
import subprocess
from dataclasses import dataclass

import pytest

from scanner.status import DaneVerdict
from testbed import cli
from tests.integration.support import Testbed

pytestmark = pytest.mark.testbed


@dataclass(frozen=True)
class Dig:
    status: str
    flags: frozenset[str]
    answer: list[tuple[str, str, str]]  # (owner, type, rdata)


def dig(tb: Testbed, name: str, rtype: str, *extra: str) -> Dig:
    address, port = tb.resolver
    out = subprocess.run(
        ["dig", f"@{address}", "-p", str(port), "+dnssec", "+adflag", "+time=5", "+tries=1",
         "+noall", "+comments", "+answer", *extra, name, rtype],
        capture_output=True, text=True, check=False, timeout=30,
    ).stdout  # fmt: skip
    status = re.search(r"status: (\w+)", out)
    flags = re.search(r";; flags: ([a-z ]+);", out)
    answer = []
    for line in out.splitlines():
        if line and not line.startswith(";"):
            owner, _ttl, _cls, kind, rdata = line.split(None, 4)
            answer.append((owner, kind, rdata))
    return Dig(
        status.group(1) if status else "NO ANSWER",
        frozenset(flags.group(1).split()) if flags else frozenset(),
        answer,
    )


def first(tb: Testbed, scenario: str) -> dict[str, object]:
    rows = tb.by_scenario(scenario)
    assert rows, f"the testbed has no {scenario} domain"
    return rows[0]


def mx_host(row: dict[str, object]) -> str:
    hosts = row["mx_hosts"]
    assert isinstance(hosts, list)
    return str(hosts[0]["host"])


@pytest.mark.parametrize(
    ("scenario", "status", "ad"),
    [
        ("ee_311", "NOERROR", True),
        ("dane_provider_a", "NOERROR", True),
        ("signed_no_tlsa", "NOERROR", True),
        ("unsigned_provider", "NOERROR", False),
        ("insecure_delegation_tlsa", "NOERROR", False),
        ("nxdomain", "NXDOMAIN", True),
        ("bogus_mx", "SERVFAIL", False),
        ("bogus_wrong_ds", "SERVFAIL", False),
        ("bogus_expired", "SERVFAIL", False),
    ],
)
def test_mx_dnssec_status(testbed: Testbed, scenario: str, status: str, ad: bool) -> None:
    domain = str(first(testbed, scenario)["domain"])
    result = dig(testbed, domain, "MX")
    assert result.status == status
    assert ("ad" in result.flags) is ad


@pytest.mark.parametrize(
    ("scenario", "status", "ad", "records"),
    [
        ("ee_311", "NOERROR", True, 1),
        ("signed_no_tlsa", "NXDOMAIN", True, 0),
        ("signed_tlsa_nodata", "NOERROR", True, 0),
        ("insecure_delegation_tlsa", "NOERROR", False, 1),
        ("bogus_tlsa", "SERVFAIL", False, 0),
        ("lame_tlsa", "SERVFAIL", False, 0),
    ],
)
def test_tlsa_dnssec_status(
    testbed: Testbed, scenario: str, status: str, ad: bool, records: int
) -> None:
    result = dig(testbed, f"_25._tcp.{mx_host(first(testbed, scenario))}", "TLSA")
    assert result.status == status
    assert ("ad" in result.flags) is ad
    assert len([a for a in result.answer if a[1] == "TLSA"]) == records


def test_big_tlsa_rrset_is_truncated_over_udp_and_whole_over_tcp(testbed: Testbed) -> None:
    name = f"_25._tcp.{mx_host(first(testbed, 'big_tlsa_rrset'))}"
    udp = dig(testbed, name, "TLSA", "+bufsize=1232", "+ignore", "+notcp")
    assert "tc" in udp.flags
    tcp = dig(testbed, name, "TLSA", "+tcp")
    assert tcp.status == "NOERROR"
    assert "ad" in tcp.flags
    assert len([a for a in tcp.answer if a[1] == "TLSA"]) == 23


def test_implicit_mx_and_cname(testbed: Testbed) -> None:
    implicit = str(first(testbed, "implicit_mx_tlsa")["domain"])
    assert dig(testbed, implicit, "MX").answer == []
    assert dig(testbed, f"_25._tcp.{implicit}", "TLSA").status == "NOERROR"
    alias = mx_host(first(testbed, "cname_tlsa_expanded"))
    result = dig(testbed, alias, "A")
    assert "ad" in result.flags
    assert [kind for _o, kind, _r in result.answer if kind != "RRSIG"] == ["CNAME", "A"]


# -- OpenSSL's DANE as the oracle for every DANE host --------------------------

DANE_SCENARIOS = sorted(
    {
        "dane_provider_a", "dane_provider_b", "dane_provider_c", "ee_311", "ee_301", "ee_312",
        "ee_300", "ee_310", "ta_211_intermediate", "ta_201_root_sent", "ta_200_not_sent",
        "ta_name_mismatch", "ta_expired_leaf", "ta_expired_intermediate",
        "ee_expired_wrong_name", "stale_after_rollover", "rollover_both", "ee_and_ta",
        "agility_strong_right", "agility_strong_wrong", "big_tlsa_rrset",
        "implicit_mx_tlsa", "cname_tlsa_expanded", "cname_tlsa_original",
        "two_hosts_one_fails", "two_addresses_one_wrong", "no_starttls", "starttls_454",
        "connect_refused", "silent_host", "dual_stack", "postfix_dane", "pkix_only",
    }
)  # fmt: skip


def tlsa_base(tb: Testbed, host: str) -> tuple[str, list[str]]:
    """RFC 7672 section 2.2.2: the expanded CNAME target first, then the original name."""
    chain = dig(tb, host, "A").answer
    targets = [rdata.rstrip(".") for _o, kind, rdata in chain if kind == "CNAME"]
    for base in [*targets[-1:], host]:
        answer = dig(tb, f"_25._tcp.{base}", "TLSA", "+tcp").answer
        records = [" ".join(r.split()[:3]) + " " + "".join(r.split()[3:]) for _o, k, r in answer
                   if k == "TLSA"]  # fmt: skip
        if records:
            return base, records
    return host, []


def addresses(tb: Testbed, host: str) -> list[str]:
    found = []
    for rtype in ("A", "AAAA"):
        found += [rdata for _o, kind, rdata in dig(tb, host, rtype).answer if kind == rtype]
    return found


def openssl_dane_ok(address: str, base: str, records: list[str]) -> bool:
    connect = f"[{address}]:25" if ":" in address else f"{address}:25"
    argv = ["openssl", "s_client", "-brief", "-starttls", "smtp", "-connect", connect,
            "-servername", base, "-dane_tlsa_domain", base, "-dane_ee_no_namechecks",
            "-verify_return_error"]  # fmt: skip
    for record in records:
        argv += ["-dane_tlsa_rrdata", record]
    try:
        proc = subprocess.run(
            argv, input="QUIT\n", capture_output=True, text=True, timeout=8, check=False
        )
    except subprocess.TimeoutExpired:
        return False
    return proc.returncode == 0 and "Verification: OK" in proc.stderr + proc.stdout


@pytest.mark.parametrize("scenario", DANE_SCENARIOS)
def test_openssl_dane_agrees_with_truth(testbed: Testbed, scenario: str) -> None:
    row = first(testbed, scenario)
    hosts = row["mx_hosts"]
    assert isinstance(hosts, list)
    for entry in hosts:
        host, verdict = str(entry["host"]), DaneVerdict(entry["verdict"])
        base, records = tlsa_base(testbed, host)
        assert records, f"{host}: no TLSA records found"
        results = [openssl_dane_ok(a, base, records) for a in addresses(testbed, host)]
        assert results, f"{host}: no addresses"
        # RFC 7672 section 3: a host passes only if every address authenticates.
        assert all(results) is (verdict is DaneVerdict.PASS), (scenario, host, results)


def test_postfix_answers_ehlo_with_starttls(testbed: Testbed) -> None:
    postfix = testbed.state["postfix"]
    assert isinstance(postfix, dict)
    with smtplib.SMTP(str(postfix["address"]), 25, local_hostname="scanner.test", timeout=10) as s:
        code, _ = s.ehlo()
        assert code == 250
        assert s.has_extn("starttls")


def test_every_testbed_socket_is_on_loopback(testbed: Testbed) -> None:
    table = json.loads((testbed.directory / cli.PROCESS_FILE).read_text())
    pids = {str(entry["pid"]) for entry in table.values()}
    assert len(pids) >= 4  # nsd, unbound, responder, postfix
    listening = subprocess.run(["ss", "-Hlntup"], capture_output=True, text=True, check=True).stdout
    seen = 0
    for line in listening.splitlines():
        owners = set(re.findall(r"pid=(\d+)", line))
        if owners & pids:
            host = line.split()[4].rsplit(":", 1)[0].strip("[]")
            assert ipaddress.ip_address(host).is_loopback, line
            seen += 1
    assert seen > 4
