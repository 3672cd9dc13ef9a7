"""MX hosts as the resolve stage leaves them, for the tests of what follows
it: the assembly of results, the verdicts, the rows."""

from __future__ import annotations

from scanner.resolve.discover import DomainResolution, HostResolution
from scanner.resolve.policy import (
    AddressDecision,
    MxDecision,
    MxKind,
    MxTarget,
    TlsaLookup,
    TlsaState,
)
from scanner.status import DnssecStatus
from scanner.tlsa import TlsaRecord

RECORD = TlsaRecord(3, 1, 1, b"\x01" * 32)  # DANE-EE SPKI SHA2-256
RECORD_TEXT = "3 1 1 " + "01" * 32


def dane_host(name: str, *addresses: str, state: TlsaState = TlsaState.RECORDS) -> HostResolution:
    """Secure addresses and, by default, a secure TLSA RRset (RECORD) at _25._tcp.NAME."""
    records = (RECORD,) if state is TlsaState.RECORDS else ()
    return HostResolution(
        name,
        AddressDecision(addresses, DnssecStatus.SECURE, None, 300),
        TlsaLookup(name, state, records, 3600),
    )


def insecure_host(name: str, *addresses: str) -> HostResolution:
    """Addresses without DNSSEC: no TLSA lookup (RFC 7672 section 2.2.2)."""
    return HostResolution(
        name,
        AddressDecision(addresses, DnssecStatus.INSECURE, None, 300),
        TlsaLookup(name, TlsaState.NOT_LOOKED_UP),
    )


def resolution(
    domain: str, *hosts: HostResolution, mx: DnssecStatus = DnssecStatus.SECURE
) -> DomainResolution:
    """``domain``'s MX RRset (``mx`` its DNSSEC status): ``hosts`` at preferences 10, 20..."""
    preferences = ((h.host, 10 * (i + 1)) for i, h in enumerate(hosts))
    return DomainResolution(domain, mx_hosts(*preferences, dnssec=mx), 600, hosts)


def mx_hosts(
    *targets: tuple[str, int], dnssec: DnssecStatus = DnssecStatus.SECURE, error: str = ""
) -> MxDecision:
    """An MX RRset of (host, preference) targets."""
    mx = tuple(MxTarget(host, preference) for host, preference in targets)
    return MxDecision(MxKind.HOSTS, dnssec, mx, error=error)
