"""Aggregation of address verdicts into host and domain verdicts (tables)."""

from __future__ import annotations

import pytest

from scanner.assemble import domain_verdict, host_verdict, session_failure
from scanner.handshake.session import SessionResult
from scanner.resolve.policy import MxDecision, MxKind
from scanner.results import AddressResult, HostResult
from scanner.status import DaneVerdict as V
from scanner.status import DnssecStatus, DomainVerdict, SmtpStatus
from tests.unit.resolutions import dane_host

SECURE = DnssecStatus.SECURE


def session(status: SmtpStatus = SmtpStatus.TLS_OK, error: str = "") -> SessionResult:
    return SessionResult("127.0.0.1", 25, "mx.example.test", status, error)


def address(verdict: V, status: SmtpStatus = SmtpStatus.TLS_OK) -> AddressResult:
    return AddressResult(session(status), verdict, f"reason {verdict}")


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        ([V.PASS], V.PASS),
        ([V.PASS, V.PASS], V.PASS),
        ([V.PASS, V.FAIL_NO_MATCH], V.FAIL_NO_MATCH),
        ([V.FAIL_NO_TLS, V.FAIL_NO_MATCH], V.FAIL_NO_MATCH),
        ([V.FAIL_TA_NAME, V.FAIL_TA_EXPIRED], V.FAIL_TA_EXPIRED),
        ([V.PASS, V.NOT_TESTED], V.PASS),  # an address not tried (blocked) does not count
        ([V.NOT_TESTED], V.NOT_TESTED),
        ([], V.FAIL_NO_TLS),
    ],
)
def test_host_verdict_is_the_worst_address(verdicts: list[V], expected: V) -> None:
    verdict, reason = host_verdict([address(v) for v in verdicts])
    assert verdict == expected
    assert reason


def test_mixed_addresses_say_how_many_failed() -> None:
    _, reason = host_verdict([address(V.PASS), address(V.FAIL_NO_MATCH)])
    assert reason.startswith("1 of 2 addresses")


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (SmtpStatus.NO_STARTTLS, V.FAIL_NO_TLS),
        (SmtpStatus.CONNECT_REFUSED, V.FAIL_NO_TLS),
        (SmtpStatus.IO_TIMEOUT, V.FAIL_NO_TLS),
        (SmtpStatus.BLOCKED, V.NOT_TESTED),
        (SmtpStatus.RESERVED, V.NOT_TESTED),
        (SmtpStatus.SKIPPED, V.NOT_TESTED),
    ],
)
def test_session_failure(status: SmtpStatus, verdict: V) -> None:
    assert session_failure(session(status, "detail"))[0] == verdict


def host(verdict: V, *statuses: SmtpStatus) -> HostResult:
    resolution = dane_host("mx.example.test.", "127.0.0.1")
    addresses = tuple(AddressResult(session(s), verdict) for s in statuses)
    return HostResult("mx.example.test.", 10, resolution, verdict, "", addresses)


MX_SECURE = MxDecision(MxKind.HOSTS, SECURE)
OK = SmtpStatus.TLS_OK
REFUSED = SmtpStatus.CONNECT_REFUSED


@pytest.mark.parametrize(
    ("mx", "hosts", "expected"),
    [
        (MX_SECURE, [host(V.PASS, OK)], DomainVerdict.DANE_VALID),
        (MX_SECURE, [host(V.PASS, OK), host(V.FAIL_NO_MATCH, OK)], DomainVerdict.DANE_PARTIAL),
        (MX_SECURE, [host(V.FAIL_NO_MATCH, OK)], DomainVerdict.DANE_INVALID),
        (MX_SECURE, [host(V.UNUSABLE, OK)], DomainVerdict.DANE_INVALID),
        (MX_SECURE, [host(V.FAIL_DNS)], DomainVerdict.DANE_INVALID),
        (MX_SECURE, [host(V.NO_DANE_ABSENT)], DomainVerdict.NO_DANE),
        (MX_SECURE, [host(V.NO_DANE_INSECURE), host(V.NO_DANE_ABSENT)], DomainVerdict.NO_DANE),
        # one DANE host passing and one host without DANE: not every host authenticates
        (MX_SECURE, [host(V.PASS, OK), host(V.NO_DANE_INSECURE)], DomainVerdict.DANE_PARTIAL),
        # a host refusing every connection is set aside when another accepts
        (MX_SECURE, [host(V.PASS, OK), host(V.FAIL_NO_TLS, REFUSED)], DomainVerdict.DANE_VALID),
        # ... but not when no host accepts connections
        (MX_SECURE, [host(V.FAIL_NO_TLS, REFUSED)], DomainVerdict.DANE_INVALID),
        # a DANE host not tested: the verdict is not_tested, or undetermined
        # when it rests on an untested host next to a tested one
        (MX_SECURE, [host(V.NOT_TESTED)], DomainVerdict.NOT_TESTED),
        (MX_SECURE, [host(V.NOT_TESTED, SmtpStatus.BLOCKED)], DomainVerdict.NOT_TESTED),
        (MX_SECURE, [host(V.PASS, OK), host(V.NOT_TESTED, SmtpStatus.BLOCKED)],
         DomainVerdict.UNDETERMINED),
        (MX_SECURE, [host(V.NOT_TESTED), host(V.NO_DANE_ABSENT)], DomainVerdict.NOT_TESTED),
        (MxDecision(MxKind.HOSTS, DnssecStatus.INSECURE), [host(V.NO_DANE_INSECURE)],
         DomainVerdict.NO_DANE),
        (MxDecision(MxKind.IMPLICIT, SECURE), [host(V.PASS, OK)], DomainVerdict.NO_MX_RECORD),
        (MxDecision(MxKind.NULL, SECURE), [], DomainVerdict.NULL_MX),
        (MxDecision(MxKind.NXDOMAIN, SECURE), [], DomainVerdict.NXDOMAIN),
        (MxDecision(MxKind.FAILED, DnssecStatus.BOGUS), [], DomainVerdict.DNSSEC_BOGUS),
        (MxDecision(MxKind.FAILED, DnssecStatus.INDETERMINATE), [], DomainVerdict.DNS_ERROR),
        (MxDecision(MxKind.INVALID, SECURE), [], DomainVerdict.NO_DANE),
    ],
)  # fmt: skip
def test_domain_verdict(mx: MxDecision, hosts: list[HostResult], expected: DomainVerdict) -> None:
    assert domain_verdict(mx, hosts) == expected
