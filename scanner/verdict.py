"""From per-address observations to per-host and per-domain verdicts (pure).

RFC 7672 section 3 decides one address: a TLS session whose chain the TLSA
RRset authenticates passes. The aggregation rules are the scanner's, stated in
DESIGN.md and applied identically by the testbed's truth:

- a host passes only if every address it was tested on passes, since a
  sending MTA may pick any of them; otherwise its worst failure counts;
- a domain is ``dane_valid`` when every MX host that accepts connections
  passes (hosts that refused or timed out on every address are set aside,
  unless no host accepts connections), ``dane_partial`` when some pass,
  ``dane_invalid`` when none does, and ``no_dane`` when no host publishes a
  usable secure TLSA RRset.
"""

from __future__ import annotations

from collections.abc import Sequence

from scanner.handshake.session import SessionResult
from scanner.resolve.policy import MxDecision, MxKind
from scanner.results import AddressResult, HostResult
from scanner.status import DaneVerdict, DnssecStatus, DomainVerdict, SmtpStatus

# Worst first: what a host reports when its addresses disagree.
_SEVERITY = (
    DaneVerdict.FAIL_DNS,
    DaneVerdict.FAIL_CHAIN,
    DaneVerdict.FAIL_TA_EXPIRED,
    DaneVerdict.FAIL_TA_NAME,
    DaneVerdict.FAIL_NO_MATCH,
    DaneVerdict.UNUSABLE,
    DaneVerdict.FAIL_NO_TLS,
    DaneVerdict.PASS,
)
_NO_DANE = (DaneVerdict.NO_DANE_INSECURE, DaneVerdict.NO_DANE_ABSENT)
_UNREACHABLE = (SmtpStatus.CONNECT_REFUSED, SmtpStatus.CONNECT_TIMEOUT)
_NOT_TRIED = (SmtpStatus.BLOCKED, SmtpStatus.RESERVED, SmtpStatus.SKIPPED)


def session_failure(session: SessionResult) -> tuple[DaneVerdict | None, str]:
    """The verdict of an address whose session did not reach TLS."""
    if session.status in _NOT_TRIED:
        return None, f"not connected: {session.status.value}"
    detail = f": {session.error}" if session.error else ""
    return DaneVerdict.FAIL_NO_TLS, f"{session.status.value}{detail}"


def host_verdict(addresses: Sequence[AddressResult]) -> tuple[DaneVerdict | None, str]:
    """Worst verdict over the addresses that were tested; None if none was."""
    tested = [a for a in addresses if a.verdict is not None]
    if not addresses:
        return DaneVerdict.FAIL_NO_TLS, "no addresses"
    if not tested:
        return None, addresses[0].reason
    worst = min(tested, key=lambda a: _SEVERITY.index(a.verdict))
    if worst.verdict is DaneVerdict.PASS:
        return DaneVerdict.PASS, worst.reason
    failing = sum(1 for a in tested if a.verdict is not DaneVerdict.PASS)
    prefix = f"{failing} of {len(tested)} addresses: " if len(tested) > 1 else ""
    return worst.verdict, prefix + worst.reason


def _accepts_connections(host: HostResult) -> bool:
    sessions = [a.session for a in host.addresses]
    return not sessions or not all(s.status in _UNREACHABLE for s in sessions)


def domain_verdict(mx: MxDecision, hosts: Sequence[HostResult]) -> DomainVerdict | None:
    """The DomainVerdict; None when DANE hosts were found but none was tested."""
    if mx.kind is MxKind.NXDOMAIN:
        return DomainVerdict.NXDOMAIN
    if mx.kind is MxKind.FAILED:
        if mx.dnssec is DnssecStatus.BOGUS:
            return DomainVerdict.DNSSEC_BOGUS
        return DomainVerdict.DNS_ERROR
    if mx.kind is MxKind.NULL:
        return DomainVerdict.NULL_MX
    if mx.kind is MxKind.IMPLICIT:
        return DomainVerdict.NO_MX_RECORD
    if mx.kind is MxKind.INVALID or mx.dnssec is not DnssecStatus.SECURE:
        return DomainVerdict.NO_DANE
    reachable = [h for h in hosts if _accepts_connections(h)] or list(hosts)
    dane = [h for h in reachable if h.verdict not in _NO_DANE]
    if not dane:
        return DomainVerdict.NO_DANE
    if any(h.verdict is None for h in dane):
        return None
    passing = sum(1 for h in reachable if h.verdict is DaneVerdict.PASS)
    if passing == len(reachable):
        return DomainVerdict.DANE_VALID
    return DomainVerdict.DANE_PARTIAL if passing else DomainVerdict.DANE_INVALID
