"""Assembling a DomainResult from an observation (scanner.assemble): tables of
observations in, DomainResults out; pure, no I/O."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

import scanner.assemble
from scanner.assemble import Key, Observation, assemble, match_jobs, tls_targets
from scanner.config import StartTlsMode
from scanner.handshake.session import SessionResult
from scanner.match.batch import CertPool
from scanner.match.outcome import MatchResult
from scanner.resolve.discover import HostResolution
from scanner.resolve.policy import (
    TlsaLookup,
    TlsaState,
    dns_verdict,
)
from scanner.results import DomainResult
from scanner.status import DaneVerdict as V
from scanner.status import DnssecStatus, DomainVerdict, SmtpStatus
from scanner.tlsa import TlsaRecord
from tests.unit.resolutions import RECORD, RECORD_TEXT, dane_host, insecure_host, resolution

WHEN = dt.datetime(2026, 12, 4, tzinfo=dt.UTC)
SECURE, INSECURE = DnssecStatus.SECURE, DnssecStatus.INSECURE
OK, BLOCKED, REFUSED = SmtpStatus.TLS_OK, SmtpStatus.BLOCKED, SmtpStatus.CONNECT_REFUSED
NO_STARTTLS = SmtpStatus.NO_STARTTLS


def observed(*hosts: HostResolution, mx: DnssecStatus = SECURE, cap: int = 4) -> Observation:
    obs = Observation(7, "a.example", 0.0, WHEN)
    obs.resolved(resolution("a.example.", *hosts, mx=mx), cap)
    return obs


def tls(address: str, status: SmtpStatus = OK) -> SessionResult:
    return SessionResult(address, 25, "sni", status, chain=(b"leaf",) if status is OK else ())


PASS = MatchResult(V.PASS, RECORD, 0, "3 1 1 matched", 0)
NO_MATCH = MatchResult(V.FAIL_NO_MATCH, None, -1, "no record matched", 65)


A1, A2 = "192.0.2.1", "192.0.2.2"
MX1, MX2 = "mx1.a.example.", "mx2.a.example."


@dataclass(frozen=True)
class Case:
    """An observation and what it assembles to: ``expected`` is the domain's
    verdict, then each host's verdict with its addresses' in brackets."""

    hosts: tuple[HostResolution, ...]
    expected: str
    sessions: Mapping[str, SmtpStatus] = field(default_factory=dict)  # by address
    matches: Mapping[str, MatchResult] = field(default_factory=dict)  # by address
    mx: DnssecStatus = SECURE
    tested: bool = True
    error: str = ""


def _run(case: Case) -> DomainResult:
    obs = observed(*case.hosts, mx=case.mx)
    owner = {a: h.host for h in case.hosts for a in h.addresses.addresses}
    obs.sessions = {(owner[a], a): tls(a, status) for a, status in case.sessions.items()}
    obs.error = case.error
    matches: dict[Key, MatchResult] = {(owner[a], a): m for a, m in case.matches.items()}
    return assemble(obs, matches, tested=case.tested, now=0.0)


def _outline(result: DomainResult) -> str:
    hosts = (f"{h.verdict}[{','.join(a.verdict for a in h.addresses)}]" for h in result.hosts)
    return f"{result.verdict}: {' '.join(hosts)}"


BOTH = (dane_host(MX1, A1), dane_host(MX2, A2))
CASES = {
    "insecure MX: no DANE, decided by DNS": Case(
        (insecure_host(MX1, A1),), "no_dane: no_dane_insecure[]", mx=INSECURE
    ),
    "secure proof of no TLSA": Case(
        (dane_host(MX1, A1, state=TlsaState.NODATA),), "no_dane: no_dane_absent[]"
    ),
    "one address, its chain matches": Case(
        (dane_host(MX1, A1),), "dane_valid: pass[pass]", {A1: OK}, {A1: PASS}
    ),
    "two addresses, one fails: the host fails": Case(
        (dane_host(MX1, A1, A2),),
        "dane_invalid: fail_no_match[pass,fail_no_match]",
        {A1: OK, A2: OK},
        {A1: PASS, A2: NO_MATCH},
    ),
    "no TLS: fail_no_tls": Case(
        (dane_host(MX1, A1),), "dane_invalid: fail_no_tls[fail_no_tls]", {A1: NO_STARTTLS}
    ),
    "--starttls none: not tested": Case(
        (dane_host(MX1, A1),), "not_tested: not_tested[]", tested=False
    ),
    "every address blocked: not tested": Case(
        (dane_host(MX1, A1),), "not_tested: not_tested[not_tested]", {A1: BLOCKED}
    ),
    "one host passes, the other was not contacted: undetermined": Case(
        BOTH, "undetermined: pass[pass] not_tested[not_tested]", {A1: OK, A2: BLOCKED}, {A1: PASS}
    ),
    "a refusing host is set aside": Case(
        BOTH, "dane_valid: pass[pass] fail_no_tls[fail_no_tls]", {A1: OK, A2: REFUSED}, {A1: PASS}
    ),
    "--starttls all: an address of a host DNS decided carries its verdict": Case(
        (dane_host(MX1, A1), insecure_host(MX2, A2)),
        "dane_partial: pass[pass] no_dane_insecure[no_dane_insecure]",
        {A1: OK, A2: OK},
        {A1: PASS},
    ),
    "an internal error: the untested host says so": Case(
        (dane_host(MX1, A1),),
        "internal_error: not_tested[not_tested]",
        {A1: OK},
        error="internal error in matching: boom",
    ),
}


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_assemble(case: Case) -> None:
    result = _run(case)
    assert _outline(result) == case.expected
    assert all(h.reason for h in result.hosts)
    assert [h.preference for h in result.hosts] == [10 * (i + 1) for i in range(len(case.hosts))]
    assert (result.domain, result.input_line, result.error) == ("a.example", 7, case.error)
    assert result.mx is not None
    assert result.mx_ttl == 600


def test_the_record_that_matched_is_on_the_address_and_the_host() -> None:
    result = _run(CASES["one address, its chain matches"])
    (host,) = result.hosts
    assert (host.addresses[0].matched, host.addresses[0].depth) == (RECORD_TEXT, 0)
    assert host.first_match == (RECORD_TEXT, 0)
    assert not host.by_dns


def test_a_host_dns_decided_gives_the_dns_reason() -> None:
    result = _run(CASES["--starttls all: an address of a host DNS decided carries its verdict"])
    decided = result.hosts[1]
    assert decided.by_dns
    assert decided.reason == "addresses insecure, TLSA not_looked_up"
    assert decided.addresses[0].reason == ""


def test_no_resolution_is_an_internal_error() -> None:
    obs = Observation(3, "b.example", 0.0, WHEN, error="internal error: boom")
    result = assemble(obs, {}, tested=True, now=0.0)
    assert (result.verdict, result.mx, result.hosts) == (DomainVerdict.INTERNAL_ERROR, None, ())


def test_duration_is_from_admission_to_the_clock_given() -> None:
    obs = observed(dane_host(MX1, "192.0.2.1"))  # admitted at 0.0
    assert assemble(obs, {}, tested=True, now=1.25).duration_ms == 1250.0


def test_transient_sessions_make_the_result_transient() -> None:
    obs = observed(dane_host(MX1, "192.0.2.1"))
    assert not assemble(obs, {}, tested=True, now=0.0).transient
    obs.sessions = {(MX1, "192.0.2.1"): tls("192.0.2.1", SmtpStatus.TLS_ERROR)}
    assert assemble(obs, {}, tested=True, now=0.0).transient


def test_the_address_cap_holds_in_every_step() -> None:
    addresses = ("192.0.2.1", "192.0.2.2", "192.0.2.3")
    obs = observed(dane_host(MX1, *addresses), cap=2)
    targets = tls_targets(obs, StartTlsMode.DANE)
    assert [t.address for t in targets] == list(addresses[:2])
    obs.sessions = {(MX1, a): tls(a) for a in addresses}  # one more than tried
    assert [key for key, _ in match_jobs(obs)] == [(MX1, a) for a in addresses[:2]]
    result = assemble(obs, dict.fromkeys(((MX1, a) for a in addresses), PASS), tested=True, now=0.0)
    assert [a.session.address for a in result.hosts[0].addresses] == list(addresses[:2])


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (StartTlsMode.DANE, [(MX1, "192.0.2.1")]),
        (StartTlsMode.ALL, [(MX1, "192.0.2.1"), (MX2, "192.0.2.2")]),
        (StartTlsMode.NONE, []),
    ],
)
def test_tls_targets_by_mode(mode: StartTlsMode, expected: list[Key]) -> None:
    obs = observed(dane_host(MX1, "192.0.2.1"), insecure_host(MX2, "192.0.2.2"))
    targets = tls_targets(obs, mode)
    assert [(t.host, t.address) for t in targets] == expected
    for target in targets:
        # SNI and names without the root's dot (RFC 6066 section 3)
        assert target.sni == target.host.rstrip(".")
        assert target.names == (target.host.rstrip("."), "a.example")


def test_match_jobs_carry_the_rrset_and_the_reference_identifiers() -> None:
    obs = observed(dane_host(MX1, "192.0.2.1", "192.0.2.2"))
    obs.sessions = {
        (MX1, "192.0.2.1"): tls("192.0.2.1"),
        (MX1, "192.0.2.2"): tls("192.0.2.2", SmtpStatus.NO_STARTTLS),
    }
    ((key, job),) = match_jobs(obs)
    assert key == (MX1, "192.0.2.1")
    assert list(job.records) == [RECORD]
    assert tuple(job.names) == ("mx1.a.example",)


def test_dns_decides_each_host_once(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = dns_verdict

    def counting(*args: Any) -> V | None:
        calls.append(args[2].base)  # (mx_secure, addresses, tlsa)
        return real(*args)

    monkeypatch.setattr(scanner.assemble, "dns_verdict", counting)
    obs = observed(dane_host(MX1, "192.0.2.1"), insecure_host(MX2, "192.0.2.2"))
    tls_targets(obs, StartTlsMode.ALL)
    obs.sessions = {(MX1, "192.0.2.1"): tls("192.0.2.1"), (MX2, "192.0.2.2"): tls("192.0.2.2")}
    match_jobs(obs)
    assemble(obs, {}, tested=True, now=0.0)
    assert calls == [MX1, MX1, MX2, MX2]  # strict and relaxed reading, once each


LEAF, ISSUER = b"leaf-der", b"issuer-der"
# Full(0) and SHA2-256(1) of the whole certificate: no parse needed (RFC 6698 section 2.1)
AT_LEAF = TlsaRecord(3, 0, 0, LEAF)
AT_ISSUER = TlsaRecord(2, 0, 1, hashlib.sha256(ISSUER).digest())


def _depths_of(
    chains: Mapping[str, tuple[bytes, ...]],
    *,
    mx: DnssecStatus = SECURE,
    tested: bool = True,
    error: str = "",
    status: SmtpStatus = OK,
) -> tuple[int, ...] | None:
    host = replace(dane_host(MX1, A1, A2), tlsa=TlsaLookup(MX1, TlsaState.RECORDS, RECORDS))
    obs = observed(host, mx=mx)
    obs.sessions = {
        (MX1, a): SessionResult(a, 25, "sni", status, chain=chain) for a, chain in chains.items()
    }
    obs.error = error
    (result,) = assemble(obs, {}, tested=tested, now=0.0, pool=CertPool()).hosts
    return result.depths


RECORDS = (AT_LEAF, AT_ISSUER, RECORD)
DEPTH_CASES: dict[str, tuple[dict[str, Any], tuple[int, ...] | None]] = {
    "leaf and issuer presented": ({"chains": {A1: (LEAF, ISSUER)}}, (0, 1, -1)),
    "lowest over the addresses": ({"chains": {A1: (ISSUER,), A2: (LEAF, ISSUER)}}, (0, 0, -1)),
    "only the leaf presented": ({"chains": {A1: (LEAF,), A2: ()}}, (0, -1, -1)),
    "a chain matching nothing": ({"chains": {A1: (b"other",)}}, (-1, -1, -1)),
    "no chain presented": ({"chains": {A1: (), A2: ()}}, None),
    "no address contacted": ({"chains": {}}, None),
    "a chain before a failure after TLS counts": (
        {"chains": {A1: (LEAF, ISSUER)}, "status": SmtpStatus.TLS_ERROR},
        (0, 1, -1),
    ),
    "a host DNS decided (insecure MX), --starttls all": (
        {"chains": {A1: (LEAF, ISSUER)}, "mx": INSECURE},
        (0, 1, -1),
    ),
    "--starttls none": ({"chains": {}, "tested": False}, None),
    "an internal error: not tested": (
        {"chains": {A1: (LEAF, ISSUER)}, "error": "internal error in matching: boom"},
        None,
    ),
}


@pytest.mark.parametrize(("given", "expected"), DEPTH_CASES.values(), ids=DEPTH_CASES.keys())
def test_each_record_gets_the_lowest_depth_it_matches(
    given: dict[str, Any], expected: tuple[int, ...] | None
) -> None:
    assert _depths_of(**given) == expected
