"""The handshake stage (scanner.handshake) against the testbed's mail hosts.

Every listener the testbed's responder serves is probed with ``run_session``,
and each outcome is checked against what the responder was configured to do
(D/responder.json): a STARTTLS host yields ``tls_ok`` with exactly the
configured chain (DER, byte for byte, leaf first) for every SNI name it maps
and for the default; the other behaviours yield ``no_starttls``,
``starttls_refused`` and ``io_timeout``. The scenarios whose hosts are
reached through DNS (a refused connection, IPv6 on ::1) are followed from
truth.parquet through the testbed's resolver to the address. The real Postfix
is probed the same way, its chain read from its own main.cf. Last, the
Handshaker's single flight: concurrent requests for one (address, SNI) pair
share one session.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import dns.query
import dns.rdatatype
import pytest
import uvloop

from scanner.handshake.handshaker import Handshaker, HandshakerStats
from scanner.handshake.session import (
    SessionResult,
    SessionSettings,
    client_context,
    run_session,
)
from scanner.handshake.smtp import ehlo_keywords
from scanner.match.der import pem_certificates
from scanner.status import SmtpStatus
from tests.integration.support import Testbed
from tests.settings import polite_settings

pytestmark = pytest.mark.testbed

T = TypeVar("T")

EHLO_NAME = "scanner.danescan-test.test"
# Loopback peers answer at once: short limits keep the silent hosts' cases quick.
SETTINGS = SessionSettings(
    ehlo_name=EHLO_NAME,
    connect_timeout=3.0,
    read_timeout=3.0,
    session_deadline=10.0,
    quit_timeout=1.0,
)
SILENT_READ_TIMEOUT = 0.5
# For hosts that never answer: the read timeout ends the session.
SILENT_SETTINGS = SessionSettings(
    ehlo_name=EHLO_NAME,
    connect_timeout=2.0,
    read_timeout=SILENT_READ_TIMEOUT,
    session_deadline=5.0,
    quit_timeout=0.5,
)
# Sessions in flight at once when a test probes many listeners.
CONCURRENCY = 16
# A name no listener maps: the responder must fall back to the default chain.
UNKNOWN_SNI = "unmapped.danescan-test.test"


@dataclass(frozen=True, slots=True)
class ListenerConfig:
    """One listener as the responder's configuration file states it."""

    address: str
    behavior: str
    chains: dict[str, str]
    default_chain: str | None


@dataclass(frozen=True, slots=True)
class Probe:
    """One STARTTLS session to run and the chain it must capture, leaf first, DER."""

    address: str
    sni: str
    chain: tuple[bytes, ...]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop, the loop the scanner itself uses."""
    return uvloop.run(coroutine)


async def bounded(calls: Iterable[Callable[[], Awaitable[T]]], limit: int) -> list[T]:
    """Await every call with at most ``limit`` in flight; results in call order."""
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(call) for call in calls)))


def sessions(
    targets: Sequence[tuple[str, str]], settings: SessionSettings = SETTINGS
) -> list[SessionResult]:
    """``run_session`` for each (address, SNI) pair, concurrently, with one shared context."""
    context = client_context()

    def call(address: str, sni: str) -> Callable[[], Awaitable[SessionResult]]:
        return lambda: run_session(address, sni, settings, context)

    return run(bounded([call(address, sni) for address, sni in targets], CONCURRENCY))


def listeners(testbed: Testbed) -> list[ListenerConfig]:
    document = json.loads((testbed.directory / "responder.json").read_text())
    return [
        ListenerConfig(
            address=item["address"],
            behavior=item["behavior"],
            chains=dict(item["chains"]),
            default_chain=item["default_chain"],
        )
        for item in document["listeners"]
    ]


def with_behavior(testbed: Testbed, behavior: str) -> list[ListenerConfig]:
    found = [listener for listener in listeners(testbed) if listener.behavior == behavior]
    assert found, f"the testbed has no {behavior} listener"
    return found


def chain_of(testbed: Testbed, chain_id: str) -> tuple[bytes, ...]:
    chain = tuple(pem_certificates((testbed.directory / "pki" / f"{chain_id}.pem").read_bytes()))
    assert chain, f"no certificate in chain {chain_id}"
    return chain


def lookup(testbed: Testbed, name: str, rtype: str) -> list[str]:
    """The addresses of ``name`` as the testbed's validating resolver gives them."""
    address, port = testbed.resolver
    query = dns.message.make_query(name, rtype, want_dnssec=True)
    answer = dns.query.udp(query, address, port=port, timeout=5.0)
    wanted = dns.rdatatype.from_text(rtype)
    return [rdata.to_text() for rrset in answer.answer if rrset.rdtype == wanted for rdata in rrset]


def mx_host_of(testbed: Testbed, scenario: str) -> str:
    rows = testbed.by_scenario(scenario)
    assert rows, f"the testbed has no {scenario} domain"
    hosts = rows[0]["mx_hosts"]
    assert isinstance(hosts, list)
    assert hosts, f"{scenario}: no MX host in the truth"
    return str(hosts[0]["host"])


def address_of(testbed: Testbed, scenario: str, rtype: str = "A") -> tuple[str, str]:
    """The MX host of the scenario's first domain and its one address."""
    host = mx_host_of(testbed, scenario)
    addresses = lookup(testbed, host, rtype)
    assert len(addresses) == 1, f"{host} {rtype}: {addresses}"
    return host, addresses[0]


def assert_tls_ok(result: SessionResult, chain: tuple[bytes, ...]) -> None:
    where = f"{result.address} SNI {result.sni!r}"
    assert result.status is SmtpStatus.TLS_OK, f"{where}: {result.status} {result.error}"
    assert result.error == ""
    assert result.chain == chain, f"{where}: chain differs from the configured one"
    assert result.tls_version.startswith("TLSv1"), where
    assert result.cipher, where
    assert "STARTTLS" in result.ehlo_keywords, where
    assert ehlo_keywords(result.transcript.ehlo_tls), f"{where}: no EHLO over TLS"
    assert "STARTTLS" not in ehlo_keywords(result.transcript.ehlo_tls), where
    assert result.tls_ms is not None
    assert result.total_ms is not None


# -- the responder, listener by listener ---------------------------------------


def starttls_probes(testbed: Testbed) -> list[Probe]:
    """Each STARTTLS listener with each SNI name it maps, with no SNI, and with an unknown one."""
    probes: list[Probe] = []
    for listener in with_behavior(testbed, "starttls"):
        assert listener.default_chain is not None
        default = chain_of(testbed, listener.default_chain)
        for name, chain_id in sorted(listener.chains.items()):
            probes.append(Probe(listener.address, name, chain_of(testbed, chain_id)))
        probes.append(Probe(listener.address, "", default))
        if UNKNOWN_SNI not in listener.chains:
            probes.append(Probe(listener.address, UNKNOWN_SNI, default))
    return probes


def test_starttls_hosts_present_the_configured_chain_for_each_sni(testbed: Testbed) -> None:
    probes = starttls_probes(testbed)
    results = sessions([(probe.address, probe.sni) for probe in probes])
    for probe, result in zip(probes, results, strict=True):
        assert (result.address, result.sni) == (probe.address, probe.sni)
        assert_tls_ok(result, probe.chain)


def test_hosts_without_starttls(testbed: Testbed) -> None:
    targets = [(listener.address, "") for listener in with_behavior(testbed, "no_starttls")]
    for result in sessions(targets):
        assert result.status is SmtpStatus.NO_STARTTLS, (result.address, result.error)
        assert result.chain == ()
        assert "STARTTLS" not in result.ehlo_keywords
        assert result.transcript.banner is not None
        assert result.transcript.banner.code == 220


def test_hosts_refusing_starttls(testbed: Testbed) -> None:
    targets = [(listener.address, "") for listener in with_behavior(testbed, "starttls_454")]
    for result in sessions(targets):
        assert result.status is SmtpStatus.STARTTLS_REFUSED, (result.address, result.error)
        assert result.chain == ()
        assert "STARTTLS" in result.ehlo_keywords
        assert result.transcript.starttls is not None
        assert result.transcript.starttls.code == 454


def test_silent_hosts_time_out(testbed: Testbed) -> None:
    targets = [(listener.address, "") for listener in with_behavior(testbed, "silent")]
    for result in sessions(targets, SILENT_SETTINGS):
        assert result.status is SmtpStatus.IO_TIMEOUT, (result.address, result.error)
        assert "banner" in result.error
        # Connected at once, then waited for the banner until the read timeout.
        assert result.connect_ms is not None
        assert result.transcript.banner is None
        assert result.total_ms is not None
        assert result.total_ms >= SILENT_READ_TIMEOUT * 1000 * 0.9


# -- scenarios reached through DNS ----------------------------------------------


@pytest.mark.parametrize(
    ("scenario", "status"),
    [
        ("no_starttls", SmtpStatus.NO_STARTTLS),
        ("starttls_454", SmtpStatus.STARTTLS_REFUSED),
        ("connect_refused", SmtpStatus.CONNECT_REFUSED),
        ("silent_host", SmtpStatus.IO_TIMEOUT),
    ],
)
def test_unreachable_scenarios_through_dns(
    testbed: Testbed, scenario: str, status: SmtpStatus
) -> None:
    host, address = address_of(testbed, scenario)
    [result] = sessions([(address, host)], SILENT_SETTINGS)
    assert result.status is status, result.error
    assert result.chain == ()


def test_connect_refused_host_has_no_listener(testbed: Testbed) -> None:
    _host, address = address_of(testbed, "connect_refused")
    assert address not in {listener.address for listener in listeners(testbed)}
    [result] = sessions([(address, "")])
    assert result.status is SmtpStatus.CONNECT_REFUSED
    assert result.error == "connection refused"
    assert result.connect_ms is None
    assert result.transcript.banner is None


def test_dual_stack_over_ipv4_and_ipv6(testbed: Testbed) -> None:
    if not testbed.state.get("ipv6"):
        pytest.skip("the testbed was brought up without IPv6")
    host, v4 = address_of(testbed, "dual_stack", "A")
    _host, v6 = address_of(testbed, "dual_stack", "AAAA")
    assert v6 == "::1"
    [v6_listener] = [listener for listener in listeners(testbed) if listener.address == "::1"]
    expected = chain_of(testbed, v6_listener.chains[host])
    by_v4, by_v6 = sessions([(v4, host), (v6, host)])
    assert_tls_ok(by_v4, expected)
    assert_tls_ok(by_v6, expected)
    assert by_v6.address == "::1"


# -- the real Postfix -----------------------------------------------------------


def postfix_chain(testbed: Testbed) -> tuple[bytes, ...]:
    """The certificates Postfix serves, in the order of its smtpd_tls_chain_files."""
    main_cf = (testbed.directory / "postfix" / "etc" / "main.cf").read_text()
    match = re.search(r"^smtpd_tls_chain_files\s*=\s*(.+)$", main_cf, re.M)
    assert match, "main.cf sets no smtpd_tls_chain_files"
    files = [Path(part.strip()) for part in match.group(1).split(",") if part.strip()]
    chain = tuple(der for file in files for der in pem_certificates(file.read_bytes()))
    assert chain, f"no certificate in {files}"
    return chain


def test_postfix_presents_its_configured_chain(testbed: Testbed) -> None:
    postfix = testbed.state["postfix"]
    if not isinstance(postfix, dict):
        pytest.skip("the testbed was brought up without Postfix")
    address, host = str(postfix["address"]), str(postfix["host"])
    # The truth's postfix_dane host resolves to this Postfix.
    assert mx_host_of(testbed, "postfix_dane") == host
    assert lookup(testbed, host, "A") == [address]
    expected = postfix_chain(testbed)
    with_sni, without_sni = sessions([(address, host), (address, "")])
    assert_tls_ok(with_sni, expected)
    assert_tls_ok(without_sni, expected)
    assert with_sni.transcript.banner is not None
    assert with_sni.transcript.banner.code == 220
    # Postfix states its own name in the greeting (RFC 5321 section 4.3.1).
    assert host in with_sni.transcript.banner.text


# -- the politeness layer: single flight ------------------------------------------


def test_concurrent_handshakes_share_one_session(testbed: Testbed) -> None:
    listener = next(listener for listener in with_behavior(testbed, "starttls") if listener.chains)
    name = sorted(listener.chains)[0]
    expected = chain_of(testbed, listener.chains[name])
    other = UNKNOWN_SNI if UNKNOWN_SNI not in listener.chains else ""
    assert listener.default_chain is not None
    other_chain = chain_of(testbed, listener.default_chain)

    async def scenario() -> tuple[list[SessionResult], HandshakerStats, HandshakerStats]:
        handshaker = Handshaker(
            SETTINGS,
            polite_settings(per_address=1, min_interval=0.0),
            client_context(),
            policy=testbed.contact_policy,
        )
        try:
            # Same pair three times, spelled differently: one key, one session.
            first = await asyncio.gather(
                handshaker.handshake(listener.address, name),
                handshaker.handshake(listener.address, name.upper() + "."),
                handshaker.handshake(listener.address, name),
            )
            in_flight = handshaker.stats
            # Later: from the finished results. Another SNI is another session.
            later = await asyncio.gather(
                handshaker.handshake(listener.address, name),
                handshaker.handshake(listener.address, other),
            )
            return [*first, *later], in_flight, handshaker.stats
        finally:
            await handshaker.aclose()

    results, in_flight, final = run(scenario())
    assert in_flight == HandshakerStats(sessions=1, joined=2)
    assert final == HandshakerStats(sessions=2, joined=2, cache_hits=1)
    shared = results[0]
    assert_tls_ok(shared, expected)
    assert all(result is shared for result in results[:4])
    assert_tls_ok(results[4], other_chain)
