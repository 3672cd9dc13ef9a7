"""The testbed's MTA-STS side against real servers: a testbed of this
module's own layouts (registered nowhere, so the catalogue is untouched),
one domain per StsServe mode, its policy URL fetched with curl --cacert
against D/webpki-roots.pem as a sender would (RFC 8461 section 3.3), and
its _mta-sts and _smtp._tls TXT records (RFC 8461 section 3.1, RFC 8460
section 3) resolved through the testbed's Unbound, signed where the zone is.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from scanner.handshake.contact import ContactPolicy
from scanner.mtasts.fetch import Fetcher, FetchSettings, pkix_context
from scanner.mtasts.response import FetchStatus
from scanner.resolve.client import DnsClient, ResolverSettings
from scanner.resolve.discover import Discoverer, DomainResolution, HostAddresses
from scanner.status import DaneVerdict as V
from scanner.status import DnssecStatus
from scanner.status import DomainVerdict as D
from testbed import nginx
from testbed.builder import STS_BODY_LIMIT, Builder, sts_policy
from testbed.cli import connections
from testbed.model import StsServe
from testbed.nginx import POLICY_PATH, PORT
from testbed.procs import TestbedError, ensure_free
from testbed.scenarios import Laid, Scenario
from testbed.scenarios.layout import shared_host_address
from tests.integration.support import Testbed, own_testbed
from tests.settings import polite_settings

# A net of its own, beside the session's testbed (DANESCAN_TEST_NET) and the
# other modules' fixed nets, and the next one for the IPv6 sites' testbed;
# DANESCAN_HTTPS_TEST_NET moves both.
NET = int(os.environ.get("DANESCAN_HTTPS_TEST_NET", "223"))
NET6 = NET + 1
LONG_TLSRPT = "v=TLSRPTv1; rua=" + ",".join(f"mailto:r{i}@reports.example.net" for i in range(20))
RECORDS = ("v=STSv1; id=20261201", "v=STSv1; id=", "not a policy record")
A, AAAA = dns.rdatatype.A, dns.rdatatype.AAAA


def _policy(domain: str) -> str:
    return sts_policy("enforce", [f"mx.{domain.rstrip('.')}"])


def _site(serve: StsServe, *, signed: bool, ipv6: bool) -> Callable[[Builder], Laid]:
    """A domain whose mta-sts site serves as ``serve``; its MX on a shared hoster."""

    def lay_out(b: Builder) -> Laid:
        domain = b.signed_domain()[0] if signed else b.unsigned_domain()
        host = f"mx.{domain}"
        b.add(domain, "MX", f"10 {host}")
        b.add(host, "A", shared_host_address(b, "sts-hosting"))
        b.mta_sts_record(domain, *RECORDS)
        b.tls_rpt(domain, LONG_TLSRPT, ("v=TLSRPTv1;", "rua=mailto:split@example.net"), "v=x")
        b.mta_sts(domain, _policy(domain), serve, ipv6=ipv6)
        return Laid(domain, (host,))

    return lay_out


def _scenario(serve: StsServe, *, signed: bool = True, ipv6: bool = False) -> Scenario:
    verdict = (D.NO_DANE, V.NO_DANE_ABSENT) if signed else (D.NO_DANE, V.NO_DANE_INSECURE)
    suffix = ("" if signed else "_unsigned") + ("_ipv6" if ipv6 else "")
    return Scenario(
        name=f"test_sts_{serve.value}{suffix}",
        weight=1.0 if serve is StsServe.POLICY and signed else 0.0,
        lay_out=_site(serve, signed=signed, ipv6=ipv6),
        description=f"test only: mta-sts.<domain> {serve.value}",
        verdict=verdict[0],
        host_verdicts=verdict[1],
        bulk=serve is StsServe.POLICY and signed,
        ipv6=ipv6,
    )


SCENARIOS = [*(_scenario(s) for s in StsServe), _scenario(StsServe.POLICY, signed=False)]
# Two sites on ::1 as well, told apart there by SNI as on their IPv4 address.
SCENARIOS6 = [_scenario(s, ipv6=True) for s in (StsServe.POLICY, StsServe.WRONG_NAME)]


@dataclass(frozen=True)
class Site:
    domain: str
    serve: StsServe
    address: str | None

    @property
    def name(self) -> str:
        return f"mta-sts.{self.domain}"


def _testbed(name: str, net: int, scenarios: list[Scenario]) -> Iterator[Testbed]:
    """A testbed of one domain per scenario; with IPv6 when one asks for it."""
    with own_testbed(
        name,
        net=net,
        domains=len(scenarios),
        seed=19,
        with_postfix=False,
        ipv6=any(s.ipv6 for s in scenarios),
        scenarios=scenarios,
    ) as tb:
        yield tb


@pytest.fixture(scope="module")
def bed() -> Iterator[Testbed]:
    yield from _testbed("https", NET, SCENARIOS)


@pytest.fixture(scope="module")
def bed6() -> Iterator[Testbed]:
    """A testbed of IPv6 sites: nginx on [::1]:443, which is one port for the
    whole machine, so the test waits for no other run to free it."""
    try:
        ensure_free("::1", PORT)
    except TestbedError as exc:
        pytest.skip(f"another testbed serves HTTPS on ::1: {exc}")
    yield from _testbed("https6", NET6, SCENARIOS6)


def _addresses(tb: Testbed, name: str, rdtype: dns.rdatatype.RdataType) -> list[str]:
    answer = _query(tb, name, rdtype)
    return [rr.address for rrset in answer.answer if rrset.rdtype == rdtype for rr in rrset]


def _site_of(tb: Testbed, scenario: str, rdtype: dns.rdatatype.RdataType = A) -> Site:
    (row,) = tb.by_scenario(scenario)
    domain = str(row["domain"])
    serve = StsServe(
        scenario.removeprefix("test_sts_").removesuffix("_ipv6").removesuffix("_unsigned")
    )
    addresses = _addresses(tb, f"mta-sts.{domain}", rdtype)
    return Site(domain, serve, addresses[0] if addresses else None)


def _roots(tb: Testbed) -> Path:
    (roots,) = tb.pkix_ca
    assert roots == tb.directory / "webpki-roots.pem"
    return roots


@dataclass(frozen=True)
class Fetched:
    exit: int
    status: int
    content_type: str
    location: str
    body: bytes
    error: str


def _curl(tb: Testbed, site: Site, tmp: Path) -> Fetched:
    assert site.address is not None
    body = tmp / f"{site.name}.body"
    address = f"[{site.address}]" if ":" in site.address else site.address
    proc = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "--cacert", str(_roots(tb)),
         "--resolve", f"{site.name}:443:{address}", "-o", str(body),
         "-w", "%{http_code}\\n%{content_type}\\n%{redirect_url}",
         f"https://{site.name}{POLICY_PATH}"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    # curl writes the three lines whatever happened (000 for no response).
    status, content_type, location = proc.stdout.split("\n", 2)
    return Fetched(
        proc.returncode,
        int(status or 0),
        content_type,
        location,
        body.read_bytes() if body.exists() else b"",
        proc.stderr,
    )


@pytest.mark.parametrize(
    "serve", [StsServe.POLICY, StsServe.WRONG_MEDIA_TYPE, StsServe.TOO_LARGE], ids=str
)
def test_a_body_is_served_with_its_media_type(
    bed: Testbed, serve: StsServe, tmp_path: Path
) -> None:
    site = _site_of(bed, f"test_sts_{serve.value}")
    got = _curl(bed, site, tmp_path)
    assert (got.exit, got.status) == (0, 200), got.error
    policy = _policy(site.domain).encode()
    if serve is StsServe.TOO_LARGE:
        assert got.body.startswith(policy)
        assert len(got.body) > STS_BODY_LIMIT
    else:
        assert got.body == policy
    expected = "text/html" if serve is StsServe.WRONG_MEDIA_TYPE else "text/plain"
    assert got.content_type == expected


def test_an_unsigned_domain_serves_its_policy_too(bed: Testbed, tmp_path: Path) -> None:
    site = _site_of(bed, "test_sts_policy_unsigned")
    got = _curl(bed, site, tmp_path)
    assert (got.exit, got.status, got.content_type) == (0, 200, "text/plain"), got.error
    assert got.body == _policy(site.domain).encode()


def test_not_found_and_redirect(bed: Testbed, tmp_path: Path) -> None:
    missing = _curl(bed, _site_of(bed, "test_sts_not_found"), tmp_path)
    assert (missing.exit, missing.status) == (0, 404)
    site = _site_of(bed, "test_sts_redirect")
    moved = _curl(bed, site, tmp_path)
    assert (moved.exit, moved.status) == (0, 301)
    assert moved.location == f"https://www.{site.domain}{POLICY_PATH}"


@pytest.mark.parametrize(
    ("serve", "reason"),
    [(StsServe.WRONG_NAME, "subject name"), (StsServe.UNTRUSTED, "certificate")],
    ids=str,
)
def test_a_certificate_a_sender_refuses_fails_verification(
    bed: Testbed, serve: StsServe, reason: str, tmp_path: Path
) -> None:
    got = _curl(bed, _site_of(bed, f"test_sts_{serve.value}"), tmp_path)
    assert got.exit == 60, got.error  # CURLE_PEER_FAILED_VERIFICATION
    assert reason in got.error


def test_the_wrong_name_is_another_name_under_a_valid_chain(bed: Testbed) -> None:
    site = _site_of(bed, "test_sts_wrong_name")
    assert site.address is not None
    context = ssl.create_default_context(cafile=str(_roots(bed)))
    context.check_hostname = False  # the chain is verified, the name is looked at here
    with (
        socket.create_connection((site.address, 443), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=site.name) as tls,
    ):
        cert = tls.getpeercert()
    assert cert is not None
    assert cert["subjectAltName"] == (("DNS", f"www.{site.domain}"),)


def test_no_https_is_refused_and_no_address_has_none(bed: Testbed, tmp_path: Path) -> None:
    refused = _curl(bed, _site_of(bed, "test_sts_no_https"), tmp_path)
    assert refused.exit == 7, refused.error  # CURLE_COULDNT_CONNECT
    assert _site_of(bed, "test_sts_no_address").address is None


def _query(tb: Testbed, name: str, rdtype: dns.rdatatype.RdataType) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=True)
    query.flags |= dns.flags.AD
    address, port = tb.resolver
    answer = dns.query.tcp(query, address, port=port, timeout=5)
    assert isinstance(answer, dns.message.Message)
    return answer


def _txt(tb: Testbed, name: str) -> tuple[set[tuple[bytes, ...]], bool, bool]:
    """The TXT RRset at ``name``: its records' strings, AD, and whether signed."""
    answer = _query(tb, name, dns.rdatatype.TXT)
    assert answer.rcode() == dns.rcode.NOERROR
    records = {
        tuple(rr.strings) for rrset in answer.answer if rrset.rdtype == dns.rdatatype.TXT
        for rr in rrset
    }  # fmt: skip
    signed = any(rrset.rdtype == dns.rdatatype.RRSIG for rrset in answer.answer)
    return records, bool(answer.flags & dns.flags.AD), signed


async def _discover(tb: Testbed, domain: str) -> tuple[DomainResolution, HostAddresses]:
    """What the scanner's own resolve stage finds for ``domain`` and its policy host."""
    settings = ResolverSettings(servers=(str(tb.state["resolver"]),), timeout=2.0)
    async with DnsClient(settings) as client:
        discoverer = Discoverer(client)
        return await discoverer.domain(domain), await discoverer.policy_host_addresses(domain)


@pytest.mark.parametrize(
    ("scenario", "secure"), [("test_sts_policy", True), ("test_sts_policy_unsigned", False)]
)
def test_txt_records_resolve_signed_where_the_zone_is(
    bed: Testbed, scenario: str, secure: bool
) -> None:
    site = _site_of(bed, scenario)
    long = LONG_TLSRPT.encode()
    assert len(long) > 255
    sts = {(r.encode(),) for r in RECORDS}
    rpt = {
        tuple(long[i : i + 255] for i in range(0, len(long), 255)),
        (b"v=TLSRPTv1;", b"rua=mailto:split@example.net"),
        (b"v=x",),
    }
    assert _txt(bed, f"_mta-sts.{site.domain}") == (sts, secure, secure)
    assert _txt(bed, f"_smtp._tls.{site.domain}") == (rpt, secure, secure)
    # The scanner's resolve stage reads the same, as secure as the zone.
    found, policy_host = asyncio.run(_discover(bed, site.domain))
    assert found.mta_sts_txt is not None
    assert found.tlsrpt_txt is not None
    dnssec = DnssecStatus.SECURE if secure else DnssecStatus.INSECURE
    assert (set(found.mta_sts_txt.records), found.mta_sts_txt.dnssec) == (sts, dnssec)
    assert (set(found.tlsrpt_txt.records), found.tlsrpt_txt.dnssec) == (rpt, dnssec)
    assert policy_host.addresses.addresses == (site.address,)
    assert policy_host.addresses.dnssec is dnssec


def _fetcher(tb: Testbed) -> Fetcher:
    """The scanner's fetcher as a scan of ``tb`` sets it up (its --pkix-ca, its ranges)."""
    return Fetcher(
        pkix_context(tb.pkix_ca),
        polite_settings(min_interval=0.0, attempts=1),
        FetchSettings(timeout=5.0, connect_timeout=2.0),
        policy=ContactPolicy.build(allow=tb.allow_ranges),
    )


# What the scanner's fetcher (RFC 8461 section 3.3) must make of each mode.
FETCHED = {
    StsServe.POLICY: FetchStatus.OK,
    StsServe.NOT_FOUND: FetchStatus.HTTP_ERROR,
    StsServe.REDIRECT: FetchStatus.REDIRECT,
    StsServe.WRONG_MEDIA_TYPE: FetchStatus.WRONG_MEDIA_TYPE,
    StsServe.TOO_LARGE: FetchStatus.TOO_LARGE,
    StsServe.WRONG_NAME: FetchStatus.CERT_NAME_MISMATCH,
    StsServe.UNTRUSTED: FetchStatus.CERT_INVALID,
    StsServe.NO_HTTPS: FetchStatus.CONNECT_ERROR,
}


# Nothing listens, or the fetcher refuses the certificate: no request is made.
REFUSED_BEFORE_A_REQUEST = (StsServe.NO_HTTPS, StsServe.WRONG_NAME, StsServe.UNTRUSTED)


def test_the_scanners_fetcher_sees_each_mode_with_the_testbeds_roots(bed: Testbed) -> None:
    fetcher = _fetcher(bed)
    sites = [_site_of(bed, f"test_sts_{serve.value}") for serve in FETCHED]

    async def fetch_all() -> dict[StsServe, FetchStatus]:
        got = {}
        for site in sites:
            assert site.address is not None
            got[site.serve] = (await fetcher.fetch(site.domain, [site.address])).status
        return got

    assert asyncio.run(fetch_all()) == FETCHED
    # nginx's request log shows each fetch that got as far as a request.
    answered = [s for s in sites if s.serve not in REFUSED_BEFORE_A_REQUEST]
    log = bed.directory / nginx.FOLDER / nginx.REQUEST_LOG
    with log.open() as lines:
        logged = {r.sni for r in nginx.request_records(lines)}
    assert {s.name for s in answered} <= logged
    seen = connections(bed.directory, https=True)
    assert {s.address for s in answered} <= {row["address"] for row in seen["per_address"]}
    assert seen["connections"] >= len(answered)


def test_ipv6_sites_are_served_on_loopback_by_sni(bed6: Testbed, tmp_path: Path) -> None:
    for rdtype in (A, AAAA):
        site = _site_of(bed6, "test_sts_policy_ipv6", rdtype)
        got = _curl(bed6, site, tmp_path)
        assert (got.exit, got.status, got.content_type) == (0, 200, "text/plain"), got.error
        assert got.body == _policy(site.domain).encode()
        other = _site_of(bed6, "test_sts_wrong_name_ipv6", rdtype)
        refused = _curl(bed6, other, tmp_path)
        assert refused.exit == 60, refused.error
        assert "subject name" in refused.error
    site = _site_of(bed6, "test_sts_policy_ipv6")
    _, policy_host = asyncio.run(_discover(bed6, site.domain))
    assert set(policy_host.addresses.addresses) == {site.address, "::1"}
    assert policy_host.addresses.dnssec is DnssecStatus.SECURE
    assert "::1/128" in bed6.allow_ranges


def test_the_scanners_fetcher_reaches_an_ipv6_site(bed6: Testbed) -> None:
    site = _site_of(bed6, "test_sts_policy_ipv6", AAAA)
    assert site.address == "::1"
    result = asyncio.run(_fetcher(bed6).fetch(site.domain, [site.address]))
    assert result.status is FetchStatus.OK
