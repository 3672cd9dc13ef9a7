"""From what the stages observed about one domain to its DomainResult (pure).

Shared by the pipeline (many domains, matched in batches) and ``scan check``
(one domain, explained): which addresses get a TLS session, which sessions go
to the matcher with which TLSA RRset and reference identifiers (RFC 7672
section 3.2.2), and how the matches make host and domain verdicts
(scanner.verdict).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from scanner.config import StartTlsMode
from scanner.handshake.polite import is_transient as session_transient
from scanner.handshake.session import SessionResult
from scanner.match.batch import MatchJob
from scanner.match.outcome import MatchResult
from scanner.resolve.discover import DomainResolution, HostResolution
from scanner.resolve.policy import MxKind, TlsaState, dns_verdict, reference_identifiers
from scanner.results import AddressResult, DomainResult, HostResult
from scanner.status import SmtpStatus
from scanner.tlsa import TlsaRecord
from scanner.verdict import domain_verdict, host_verdict, session_failure

Key = tuple[str, str]  # (MX host, address)


@dataclass(slots=True)
class Observation:
    """One domain on its way through the stages (filled in stage by stage)."""

    line: int
    domain: str
    started: float  # time.monotonic() when admitted
    scanned_at: dt.datetime
    resolution: DomainResolution | None = None
    targets: Sequence[TlsTarget] = ()  # tls_targets(), set by the resolve stage
    sessions: dict[Key, SessionResult] = field(default_factory=dict)
    error: str = ""
    attempts: int = 1  # lookups of the domain, counted (not those an outage spoilt)


@dataclass(frozen=True, slots=True)
class TlsTarget:
    host: str
    address: str
    sni: str  # the TLSA base domain (RFC 7672 section 8.1), or the host name
    names: tuple[str, ...]  # further names the address stands for (exclusion checks)


def _dane_pending(resolution: DomainResolution, host: HostResolution) -> bool:
    """DNS alone does not settle this host: a secure TLSA RRset awaits a chain."""
    return dns_verdict(resolution.mx.dane_applies, host.addresses, host.tlsa) is None


def tls_targets(obs: Observation, mode: StartTlsMode, max_addresses: int) -> list[TlsTarget]:
    resolution = obs.resolution
    if resolution is None or mode is StartTlsMode.NONE:
        return []
    targets = []
    for host in resolution.hosts:
        if mode is StartTlsMode.DANE and not _dane_pending(resolution, host):
            continue
        base = host.tlsa.base if host.tlsa.state is TlsaState.RECORDS else host.host
        for address in host.addresses.addresses[:max_addresses]:
            names = (host.host.rstrip("."), obs.domain)
            targets.append(TlsTarget(host.host, address, base.rstrip("."), names))
    return targets


def match_jobs(obs: Observation, max_addresses: int) -> list[tuple[Key, MatchJob]]:
    """A job per address that reached TLS on a host whose TLSA RRset is pending."""
    resolution = obs.resolution
    if resolution is None:
        return []
    implicit = obs.domain if resolution.mx.kind is MxKind.IMPLICIT else None
    jobs = []
    for host in resolution.hosts:
        if not _dane_pending(resolution, host):
            continue
        records = [TlsaRecord(t.usage, t.selector, t.mtype, t.data) for t in host.tlsa.records]
        names = reference_identifiers(host.host, host.tlsa.base, implicit)
        for address in host.addresses.addresses[:max_addresses]:
            session = obs.sessions.get((host.host, address))
            if session is not None and session.status is SmtpStatus.TLS_OK:
                jobs.append(((host.host, address), MatchJob(session.chain, records, names)))
    return jobs


def conclude(
    obs: Observation,
    matches: Mapping[Key, MatchResult],
    *,
    tested: bool,
    max_addresses: int,
) -> DomainResult:
    """The DomainResult; ``tested`` is False under --starttls none."""
    resolution = obs.resolution
    hosts: list[HostResult] = []
    if resolution is not None:
        preferences = {t.host: t.preference for t in resolution.mx.targets}
        for host in resolution.hosts:
            preference = preferences.get(host.host, 0)
            hosts.append(
                _host_result(obs, resolution, host, preference, matches, tested, max_addresses)
            )
    verdict = None
    if resolution is not None and not obs.error:
        verdict = domain_verdict(resolution.mx, hosts)
    return DomainResult(
        domain=obs.domain,
        input_line=obs.line,
        verdict=verdict,
        error=obs.error,
        mx=resolution.mx if resolution else None,
        mx_ttl=resolution.mx_ttl if resolution else None,
        hosts=tuple(hosts),
        scanned_at=obs.scanned_at,
        duration_ms=(time.monotonic() - obs.started) * 1000,
        attempts=obs.attempts,
        transient=is_transient(obs),
    )


def is_transient(obs: Observation) -> bool:
    """Whether what was observed rests on an outcome that may differ if
    tried again: a transient DNS answer (scanner.resolve.wire.is_transient)
    or a session that ended transiently (scanner.handshake.polite)."""
    resolution = obs.resolution
    if resolution is not None and resolution.transient:
        return True
    return any(session_transient(s) for s in obs.sessions.values())


def _host_result(
    obs: Observation,
    resolution: DomainResolution,
    host: HostResolution,
    preference: int,
    matches: Mapping[Key, MatchResult],
    tested: bool,
    max_addresses: int,
) -> HostResult:
    decided = dns_verdict(resolution.mx.dane_applies, host.addresses, host.tlsa)
    addresses: list[AddressResult] = []
    sessions = obs.sessions
    for address in host.addresses.addresses[:max_addresses] if sessions else ():
        session = sessions.get((host.host, address))
        if session is None:
            continue
        match = matches.get((host.host, address))
        if decided is not None:
            addresses.append(AddressResult(session))
        elif match is None:
            addresses.append(AddressResult(session, *session_failure(session)))
        else:
            matched = match.record.to_text() if match.record is not None else None
            addresses.append(
                AddressResult(session, match.verdict, match.reason, matched, match.depth)
            )
    if decided is not None:
        verdict, reason = decided, dns_reason(host)
    elif not tested:
        verdict, reason = None, "TLSA published; not tested (--starttls none)"
    else:
        verdict, reason = host_verdict(addresses)
    return HostResult(host.host, preference, host, verdict, reason, tuple(addresses))


def dns_reason(host: HostResolution) -> str:
    tlsa = host.tlsa
    parts = [f"addresses {host.addresses.dnssec.value}", f"TLSA {tlsa.state.value}"]
    if tlsa.error:
        parts.append(tlsa.error)
    return ", ".join(parts)
