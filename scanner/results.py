"""What a scan concludes about one domain: frozen, typed results that
scanner.assemble makes from what the stages (resolve, handshake, match)
observed. Conversion to Arrow rows and JSON lives in scanner.output only."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from scanner.effective import Effective
from scanner.handshake.session import SessionResult
from scanner.mailpolicy import DowngradeSign, HostJudgement, Policies
from scanner.resolve.discover import HostResolution
from scanner.resolve.policy import MxDecision
from scanner.status import DaneVerdict, DomainVerdict


@dataclass(frozen=True, slots=True)
class AddressResult:
    """One address of an MX host: the session and, after TLS, the DANE check."""

    session: SessionResult
    # The host's when DNS decided it (no TLSA to check); not_tested when
    # the address was not contacted.
    verdict: DaneVerdict
    reason: str = ""
    matched: str | None = None  # the matching record as "U S M HEX"
    depth: int = -1


@dataclass(frozen=True, slots=True)
class HostResult:
    host: str  # absolute, with the trailing dot
    preference: int
    resolution: HostResolution
    verdict: DaneVerdict
    reason: str
    addresses: tuple[AddressResult, ...] = ()
    by_dns: bool = False  # DNS alone settled the verdict: no address had a check of its own
    # Per record of resolution.tlsa.records, the lowest chain depth at which it
    # matches a certificate any address presented (-1: none), whatever its usage
    # (scanner.match.depths); None when no chain was presented or the host was
    # not tested.
    depths: tuple[int, ...] | None = None
    # Beside DANE (scanner.mailpolicy): the host under the domain's MTA-STS
    # policy (None: none applies), REQUIRETLS over TLS (None: no EHLO over
    # TLS), the downgrade signs of its sessions, and its DANE verdict
    # --days-ahead days later (None: not asked).
    sts: HostJudgement | None = None
    requiretls: bool | None = None
    downgrade: tuple[DowngradeSign, ...] = ()
    verdict_ahead: DaneVerdict | None = None
    # As a sender that uses DANE under an insecure MX RRset sees the host
    # (RFC 7672 s2.2.1, Postfix's default); the strict verdict otherwise.
    verdict_relaxed: DaneVerdict | None = None

    @property
    def first_match(self) -> tuple[str | None, int]:
        """The record the first matching address matched and the chain depth
        of the certificate it matched; (None, -1) when no address matched."""
        for a in self.addresses:
            if a.matched:
                return a.matched, a.depth
        return None, -1


@dataclass(frozen=True, slots=True)
class DomainResult:
    domain: str  # normalised, without the trailing dot; the raw text for input errors
    input_line: int
    verdict: DomainVerdict
    error: str
    mx: MxDecision | None  # None for input errors
    mx_ttl: int | None
    hosts: tuple[HostResult, ...]
    scanned_at: dt.datetime
    duration_ms: float
    attempts: int = 1  # lookups of the domain (scanner.assemble.Observation.attempts)
    transient: bool = False  # rests on an outcome that may differ if tried again
    verdict_relaxed: DomainVerdict | None = None  # see HostResult.verdict_relaxed
    policies: Policies | None = None  # MTA-STS and TLS-RPT; None: not looked up
    effective: Effective | None = None  # None for input errors
    days_ahead: int | None = None
    verdict_ahead: DomainVerdict | None = None
    effective_ahead: Effective | None = None
