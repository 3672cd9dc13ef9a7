"""From what the stages observed about one domain to its DomainResult (pure).

One domain crosses the stages as an ``Observation``: the resolve stage sets
its resolution and, once per MX host, a ``HostPlan`` (what DNS alone decides
about the host, RFC 7672 sections 2.1-2.2, and the addresses the scan tries,
capped); the handshake stage adds a session per ``TlsTarget``; the matcher
gets a ``MatchJob`` per session that reached TLS on a host whose secure TLSA
RRset awaits a chain, with the reference identifiers of RFC 7672 section
3.2.2. ``assemble`` then makes the DomainResult. Shared by the pipeline (many
domains, matched in batches) and ``scan check`` (one domain, explained).

RFC 7672 section 3 decides one address: a TLS session whose chain the TLSA
RRset authenticates passes. The aggregation rules are the scanner's, stated
in DESIGN.md and applied identically by the testbed's truth:

- a host passes only if every address it was tested on passes, since a
  sending MTA may pick any of them; otherwise its worst failure counts;
- a domain is ``dane_valid`` when every MX host that accepts connections
  passes (hosts that refused or timed out on every address are set aside,
  unless no host accepts connections), ``dane_partial`` when some pass,
  ``dane_invalid`` when none does, and ``no_dane`` when no host publishes a
  usable secure TLSA RRset.

Every verdict is explicit: ``not_tested`` where a secure TLSA RRset was
published but no address of the host was tested (``--starttls none``, or
the scan does not contact them), ``undetermined`` for a domain whose verdict
rests on such a host next to tested ones, ``internal_error`` for a domain a
bug stopped (its ``error`` says where).

Beside DANE (scanner.mailpolicy, scanner.effective): each host's sessions
judged under the domain's MTA-STS policy, REQUIRETLS and downgrade signs,
and the policy a sender implementing both applies. ``--days-ahead`` N
assembles the hosts again from matches made N days later, and judges the
PKIX chains of MTA-STS at that time too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from cryptography.x509.verification import Store

from scanner import names
from scanner.config import StartTlsMode
from scanner.effective import Effective, HostSituation, StsSituation, effective
from scanner.handshake.polite import is_transient as session_transient
from scanner.handshake.session import SessionResult
from scanner.mailpolicy import (
    Policies,
    StsObservation,
    downgrade_signs,
    fetch_wanted,
    judge_host,
    requiretls_offered,
    sts_record,
    tlsrpt_record,
)
from scanner.match.batch import CertPool, MatchJob
from scanner.match.depths import record_depths
from scanner.match.outcome import MatchResult
from scanner.resolve.discover import DomainResolution, HostResolution
from scanner.resolve.policy import (
    MxDecision,
    MxKind,
    TlsaState,
    dns_verdict,
    reference_identifiers,
)
from scanner.results import AddressResult, DomainResult, HostResult
from scanner.status import DaneVerdict, DnssecStatus, DomainVerdict, SmtpStatus

Key = tuple[str, str]  # (MX host, address)


@dataclass(frozen=True, slots=True)
class HostPlan:
    """One MX host as the resolve stage leaves it, decided once."""

    resolution: HostResolution
    preference: int
    # What DNS alone settles; None while a secure TLSA RRset awaits a chain.
    dns_verdict: DaneVerdict | None
    addresses: tuple[str, ...]  # the ones the scan tries: at most max_addresses
    # The same, for a sender that also uses DANE for the hosts of an insecure
    # MX RRset (RFC 7672 s2.2.1 allows it; Postfix does it by default).
    relaxed_dns_verdict: DaneVerdict | None = DaneVerdict.NO_DANE_INSECURE

    @property
    def host(self) -> str:
        return self.resolution.host

    @property
    def pending(self) -> bool:
        """DNS alone does not settle this host: the handshake and matcher must."""
        return self.dns_verdict is None

    @property
    def needs_chain(self) -> bool:
        """A chain decides one of the host's two verdicts (strict or relaxed)."""
        return self.dns_verdict is None or self.relaxed_dns_verdict is None


def plan_hosts(resolution: DomainResolution, max_addresses: int) -> tuple[HostPlan, ...]:
    preferences = {t.host: t.preference for t in resolution.mx.targets}
    applies = resolution.mx.dane_applies
    relaxed = relaxed_applies(resolution.mx)
    return tuple(
        HostPlan(
            host,
            preferences.get(host.host, 0),
            dns_verdict(applies, host.addresses, host.tlsa),
            host.addresses.addresses[:max_addresses],
            dns_verdict(relaxed, host.addresses, host.tlsa),
        )
        for host in resolution.hosts
    )


def relaxed_applies(mx: MxDecision) -> bool:
    """DANE for the hosts of an MX RRset that is secure or provably insecure
    (never bogus: RFC 7672 s2.1.1), as a sender of the relaxed reading has it."""
    return mx.kind in (MxKind.HOSTS, MxKind.IMPLICIT) and mx.dnssec in (
        DnssecStatus.SECURE,
        DnssecStatus.INSECURE,
    )


@dataclass(frozen=True, slots=True)
class TlsTarget:
    host: str
    address: str
    sni: str  # the TLSA base domain (RFC 7672 section 8.1), or the host name
    names: tuple[str, ...]  # further names the address stands for (exclusion checks)


@dataclass(slots=True)
class Observation:
    """One domain on its way through the stages (filled in stage by stage)."""

    line: int
    domain: str
    started: float  # time.monotonic() when admitted
    scanned_at: dt.datetime
    resolution: DomainResolution | None = None
    hosts: tuple[HostPlan, ...] = ()  # set with the resolution (``resolved``)
    targets: Sequence[TlsTarget] = ()  # tls_targets(), set by the resolve stage
    sessions: dict[Key, SessionResult] = field(default_factory=dict)
    error: str = ""
    attempts: int = 1  # lookups of the domain, counted (not those an outage spoilt)
    policies: Policies | None = None  # MTA-STS and TLS-RPT; None: not looked up

    def resolved(self, resolution: DomainResolution, max_addresses: int) -> None:
        """The resolve stage's outcome, and what it decides of each host."""
        self.resolution = resolution
        self.hosts = plan_hosts(resolution, max_addresses)
        sts, tlsrpt = resolution.mta_sts_txt, resolution.tlsrpt_txt
        if sts is not None and tlsrpt is not None:
            self.policies = Policies(StsObservation(sts_record(sts)), tlsrpt_record(tlsrpt))


def tls_targets(obs: Observation, mode: StartTlsMode) -> list[TlsTarget]:
    if obs.resolution is None or mode is StartTlsMode.NONE:
        return []
    targets: list[TlsTarget] = []
    # A domain with an MTA-STS record has its hosts judged by their chains
    # (RFC 8461 s4.2) whether or not DANE needs them.
    sts = obs.policies is not None and fetch_wanted(obs.policies.sts.record)
    for plan in obs.hosts:
        if mode is StartTlsMode.DANE and not plan.needs_chain and not sts:
            continue
        tlsa = plan.resolution.tlsa
        sni = names.relative(tlsa.base if tlsa.state is TlsaState.RECORDS else plan.host)
        also = (names.relative(plan.host), obs.domain)
        targets.extend(TlsTarget(plan.host, address, sni, also) for address in plan.addresses)
    return targets


def match_jobs(obs: Observation) -> list[tuple[Key, MatchJob]]:
    """A job per address that reached TLS on a host whose TLSA RRset is pending."""
    resolution = obs.resolution
    if resolution is None:
        return []
    implicit = obs.domain if resolution.mx.kind is MxKind.IMPLICIT else None
    jobs = []
    for plan in obs.hosts:
        if not plan.needs_chain:
            continue
        tlsa = plan.resolution.tlsa
        identifiers = reference_identifiers(plan.host, tlsa.base, implicit)
        for address in plan.addresses:
            session = obs.sessions.get((plan.host, address))
            if session is not None and session.status is SmtpStatus.TLS_OK:
                jobs.append(
                    ((plan.host, address), MatchJob(session.chain, tlsa.records, identifiers))
                )
    return jobs


def assemble(
    obs: Observation,
    matches: Mapping[Key, MatchResult],
    *,
    tested: bool,
    now: float,
    pool: CertPool | None = None,
    trust: Store | None = None,
    days_ahead: int | None = None,
    matches_ahead: Mapping[Key, MatchResult] | None = None,
) -> DomainResult:
    """The DomainResult; ``tested`` is False under --starttls none. ``pool``
    holds the digests of the chains seen (the matcher's, or a new one).
    ``trust``: the PKIX roots MTA-STS hosts are judged by (None: not judged);
    ``matches_ahead``: the same jobs matched ``days_ahead`` days later."""
    resolution = obs.resolution
    untested = "" if tested else "TLSA published; not tested (--starttls none)"
    if obs.error:
        untested = "not tested: internal error"
    if pool is None:
        pool = CertPool()
    hosts = tuple(_host_result(obs, plan, matches, untested, pool) for plan in obs.hosts)
    if obs.error or resolution is None:
        verdict = DomainVerdict.INTERNAL_ERROR
    else:
        verdict = domain_verdict(resolution.mx, hosts)
    relaxed, relaxed_verdict = _relaxed(obs, hosts, verdict, matches, untested, pool)
    hosts = tuple(
        replace(_beside_dane(obs, h, trust, obs.scanned_at), verdict_relaxed=r)
        for h, r in zip(hosts, relaxed, strict=True)
    )
    ahead: _Ahead | None = None
    if days_ahead is not None and matches_ahead is not None:
        ahead = _ahead(obs, matches_ahead, untested, pool, trust, days_ahead)
        hosts = tuple(
            replace(h, verdict_ahead=later.verdict)
            for h, later in zip(hosts, ahead.hosts, strict=True)
        )
    return DomainResult(
        domain=obs.domain,
        input_line=obs.line,
        verdict=verdict,
        error=obs.error,
        mx=resolution.mx if resolution else None,
        mx_ttl=resolution.mx_ttl if resolution else None,
        hosts=hosts,
        scanned_at=obs.scanned_at,
        duration_ms=(now - obs.started) * 1000,
        attempts=obs.attempts,
        transient=is_transient(obs),
        verdict_relaxed=relaxed_verdict,
        policies=obs.policies,
        effective=_effective(obs, verdict, hosts),
        days_ahead=days_ahead if ahead is not None else None,
        verdict_ahead=ahead.verdict if ahead is not None else None,
        effective_ahead=ahead.effective if ahead is not None else None,
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
    plan: HostPlan,
    matches: Mapping[Key, MatchResult],
    untested: str,
    pool: CertPool,
) -> HostResult:
    """``untested``: why the pending host was not tested, "" when it was."""
    decided = plan.dns_verdict
    addresses: list[AddressResult] = []
    sessions = obs.sessions
    for address in plan.addresses if sessions else ():
        session = sessions.get((plan.host, address))
        if session is None:
            continue
        match = matches.get((plan.host, address))
        if decided is not None:
            # DNS decided the host: its addresses get no DANE check of their own.
            addresses.append(AddressResult(session, decided))
        elif untested:
            addresses.append(AddressResult(session, DaneVerdict.NOT_TESTED, untested))
        elif match is None:
            addresses.append(AddressResult(session, *session_failure(session)))
        else:
            matched = match.record.to_text() if match.record is not None else None
            addresses.append(
                AddressResult(session, match.verdict, match.reason, matched, match.depth)
            )
    if decided is not None:
        verdict, reason = decided, dns_reason(plan.resolution)
    elif untested:
        verdict, reason = DaneVerdict.NOT_TESTED, untested
    else:
        verdict, reason = host_verdict(addresses)
    records = plan.resolution.tlsa.records
    # Every record, every chain the host's addresses presented (also those of a
    # host DNS decided, or a session that failed after the handshake): the
    # dataset's record depths describe what was seen, not only what was matched.
    depths = None
    if records and not untested:
        depths = record_depths(records, (a.session.chain for a in addresses), pool)
    return HostResult(
        plan.host,
        plan.preference,
        plan.resolution,
        verdict,
        reason,
        tuple(addresses),
        by_dns=decided is not None,
        depths=depths,
    )


# -- beside DANE -----------------------------------------------------------------------


def _relaxed(
    obs: Observation,
    hosts: Sequence[HostResult],
    verdict: DomainVerdict,
    matches: Mapping[Key, MatchResult],
    untested: str,
    pool: CertPool,
) -> tuple[tuple[DaneVerdict, ...], DomainVerdict]:
    """The host and domain verdicts of the relaxed reading (RFC 7672 s2.2.1):
    the strict ones unless the MX RRset is insecure and some host has a
    secure TLSA RRset, whose chains then decide (matched already)."""
    resolution = obs.resolution
    strict = tuple(h.verdict for h in hosts)
    if resolution is None or obs.error or resolution.mx.dane_applies:
        return strict, verdict
    if not any(plan.relaxed_dns_verdict is None for plan in obs.hosts):
        return strict, verdict
    relaxed = [
        _host_result(
            obs, replace(plan, dns_verdict=plan.relaxed_dns_verdict), matches, untested, pool
        )
        for plan in obs.hosts
    ]
    return tuple(h.verdict for h in relaxed), domain_verdict(resolution.mx, relaxed, relaxed=True)


def _sessions(obs: Observation, host: str) -> list[SessionResult]:
    return [s for (h, _), s in obs.sessions.items() if h == host]


def _beside_dane(
    obs: Observation, host: HostResult, trust: Store | None, when: dt.datetime
) -> HostResult:
    """The host's REQUIRETLS, downgrade signs and, under a policy, MTA-STS judgement."""
    sessions = _sessions(obs, host.host)
    offers = [o for s in sessions if (o := requiretls_offered(s)) is not None]
    policy = obs.policies.sts.applies if obs.policies is not None else None
    judged = None
    if policy is not None and trust is not None and sessions:
        judged = judge_host(policy, host.host, sessions, when, trust)
    secure = host.resolution.tlsa.state is TlsaState.RECORDS
    return replace(
        host,
        sts=judged,
        requiretls=any(offers) if offers else None,
        downgrade=downgrade_signs(secure, sessions),
    )


def _effective(
    obs: Observation, verdict: DomainVerdict, hosts: Sequence[HostResult]
) -> Effective | None:
    """The policy a sender applies; None when MTA-STS was not looked up."""
    if obs.policies is None:
        return None
    sts = obs.policies.sts
    applied = sts.applies
    situation = StsSituation(
        sts.record.status, applied.mode if applied is not None else None, sts.transient
    )
    return effective(
        verdict,
        [HostSituation(h.verdict, h.sts.status if h.sts is not None else None) for h in hosts],
        situation,
    )


@dataclass(frozen=True, slots=True)
class _Ahead:
    hosts: tuple[HostResult, ...]
    verdict: DomainVerdict
    effective: Effective | None


def _ahead(
    obs: Observation,
    matches: Mapping[Key, MatchResult],
    untested: str,
    pool: CertPool,
    trust: Store | None,
    days: int,
) -> _Ahead:
    """The hosts, the verdict and the effective outcome ``days`` days later:
    the same records and chains, matched (and PKIX-judged) at that time."""
    when = obs.scanned_at + dt.timedelta(days=days)
    later = tuple(
        _beside_dane(obs, _host_result(obs, plan, matches, untested, pool), trust, when)
        for plan in obs.hosts
    )
    resolution = obs.resolution
    if obs.error or resolution is None:
        verdict = DomainVerdict.INTERNAL_ERROR
    else:
        verdict = domain_verdict(resolution.mx, later)
    return _Ahead(later, verdict, _effective(obs, verdict, later))


def dns_reason(host: HostResolution) -> str:
    tlsa = host.tlsa
    parts = [f"addresses {host.addresses.dnssec.value}", f"TLSA {tlsa.state.value}"]
    if tlsa.error:
        parts.append(tlsa.error)
    return ", ".join(parts)


# -- verdicts ------------------------------------------------------------------------

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


def session_failure(session: SessionResult) -> tuple[DaneVerdict, str]:
    """The verdict of an address whose session did not reach TLS."""
    if session.status in _NOT_TRIED:
        return DaneVerdict.NOT_TESTED, f"not connected: {session.status.value}"
    detail = f": {session.error}" if session.error else ""
    return DaneVerdict.FAIL_NO_TLS, f"{session.status.value}{detail}"


def host_verdict(addresses: Sequence[AddressResult]) -> tuple[DaneVerdict, str]:
    """Worst verdict over the addresses that were tested; not_tested if none was."""
    tested = [a for a in addresses if a.verdict is not DaneVerdict.NOT_TESTED]
    if not addresses:
        return DaneVerdict.FAIL_NO_TLS, "no addresses"
    if not tested:
        return DaneVerdict.NOT_TESTED, addresses[0].reason
    worst = min(tested, key=lambda a: _SEVERITY.index(a.verdict))
    if worst.verdict is DaneVerdict.PASS:
        return DaneVerdict.PASS, worst.reason
    failing = sum(1 for a in tested if a.verdict is not DaneVerdict.PASS)
    prefix = f"{failing} of {len(tested)} addresses: " if len(tested) > 1 else ""
    return worst.verdict, prefix + worst.reason


def _accepts_connections(host: HostResult) -> bool:
    sessions = [a.session for a in host.addresses]
    return not sessions or not all(s.status in _UNREACHABLE for s in sessions)


def domain_verdict(
    mx: MxDecision, hosts: Sequence[HostResult], *, relaxed: bool = False
) -> DomainVerdict:
    """The DomainVerdict; not_tested when DANE hosts were found but none was
    tested, undetermined when some were tested and others not. ``relaxed``:
    as a sender that uses DANE under an insecure MX RRset sees it."""
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
    if mx.kind is MxKind.INVALID or not (mx.dane_applies or (relaxed and relaxed_applies(mx))):
        return DomainVerdict.NO_DANE
    reachable = [h for h in hosts if _accepts_connections(h)] or list(hosts)
    dane = [h for h in reachable if h.verdict not in _NO_DANE]
    if not dane:
        return DomainVerdict.NO_DANE
    untested = sum(1 for h in dane if h.verdict is DaneVerdict.NOT_TESTED)
    if untested:
        return DomainVerdict.NOT_TESTED if untested == len(dane) else DomainVerdict.UNDETERMINED
    passing = sum(1 for h in reachable if h.verdict is DaneVerdict.PASS)
    if passing == len(reachable):
        return DomainVerdict.DANE_VALID
    return DomainVerdict.DANE_PARTIAL if passing else DomainVerdict.DANE_INVALID
