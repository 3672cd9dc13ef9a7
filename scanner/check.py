"""`scan check DOMAIN`: one domain, explained step by step in plain language,
like danecheck or posttls-finger, through the same stages a scan runs.

Exit status by verdict: 0 dane_valid; 1 DANE failed (dane_partial,
dane_invalid, dnssec_bogus, dns_error); 3 no DANE to check (no_dane, null_mx,
no_mx_record, nxdomain); 2 bad input.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from typing import TextIO

from scanner import names
from scanner.assemble import Observation, assemble, match_jobs, tls_targets
from scanner.config import ScanConfig, StartTlsMode
from scanner.handshake.contact import contact_policy
from scanner.handshake.handshaker import Handshaker
from scanner.handshake.session import client_context
from scanner.mailpolicy import fetch_wanted
from scanner.match.batch import CertPool, match_batch
from scanner.match.outcome import MatchResult
from scanner.mtasts.fetch import fetcher_for
from scanner.mtasts.pkix import load_trust_store
from scanner.policyfetch import fetch_policy
from scanner.resolve.client import DnsClient
from scanner.resolve.discover import Discoverer
from scanner.resolve.policy import MxKind
from scanner.results import DomainResult, HostResult
from scanner.status import DaneVerdict, DomainVerdict, SmtpStatus
from scanner.terminal import printable

EXIT_BY_VERDICT = {
    DomainVerdict.DANE_VALID: 0,
    DomainVerdict.DANE_PARTIAL: 1,
    DomainVerdict.DANE_INVALID: 1,
    DomainVerdict.DNSSEC_BOGUS: 1,
    DomainVerdict.DNS_ERROR: 1,
    # The verdict could not be made: not "no DANE to check" either.
    DomainVerdict.NOT_TESTED: 1,
    DomainVerdict.UNDETERMINED: 1,
    DomainVerdict.INTERNAL_ERROR: 1,
}
EXIT_NO_DANE = 3


async def check(config: ScanConfig, domain: str) -> DomainResult:
    """Resolve, handshake, fetch and match one domain exactly as the pipeline does.

    Raises ContactPolicyError, before any query, for a bad --exclude file."""
    policy = contact_policy(config)  # the same policy as the pipeline's
    now = dt.datetime.now(dt.UTC)
    obs = Observation(0, domain, time.monotonic(), now)
    handshaker = Handshaker(
        config.session_settings, config.polite_settings, client_context(), policy=policy
    )
    async with DnsClient(config.resolver_settings) as client:
        discoverer = Discoverer(
            client,
            max_mx=config.max_mx,
            cache_size=config.host_cache_size,
            policies=config.mta_sts,
        )
        obs.resolved(await discoverer.domain(domain), config.max_addresses)
        targets = tls_targets(obs, config.starttls)
        try:
            async with asyncio.TaskGroup() as group:
                if config.mta_sts and obs.policies and fetch_wanted(obs.policies.sts.record):
                    fetcher = fetcher_for(config, policy)
                    group.create_task(fetch_policy(fetcher, discoverer, obs))
                sessions = await asyncio.gather(
                    *(handshaker.handshake(t.address, t.sni, t.names) for t in targets)
                )
        finally:
            await handshaker.aclose()
    obs.sessions = {(t.host, t.address): s for t, s in zip(targets, sessions, strict=True)}
    keyed = match_jobs(obs)
    pool = CertPool()
    jobs = [job for _, job in keyed]

    def matched(when: dt.datetime) -> dict[tuple[str, str], MatchResult]:
        results = match_batch(jobs, when, pool=pool)
        return {key: match for (key, _), match in zip(keyed, results, strict=True)}

    ahead = None
    if config.days_ahead is not None:
        ahead = matched(now + dt.timedelta(days=config.days_ahead))
    return assemble(
        obs,
        matched(now),
        tested=config.starttls is not StartTlsMode.NONE,
        now=time.monotonic(),
        pool=pool,
        trust=load_trust_store(config.pkix_ca) if config.mta_sts else None,
        days_ahead=config.days_ahead,
        matches_ahead=ahead,
    )


def explain(result: DomainResult) -> Iterator[str]:
    """The result as numbered steps a mail administrator can follow."""
    mx = result.mx
    yield f"Domain {result.domain}"
    if mx is None:
        yield f"  not checked: {result.error}"
        return
    secure = "secure (DNSSEC validated)" if mx.dnssec.value == "secure" else mx.dnssec.value
    kinds = {
        MxKind.HOSTS: f"{len(mx.targets)} MX host(s), answer {secure}",
        MxKind.NULL: f"a null MX (0 .): the domain accepts no mail; answer {secure}",
        MxKind.IMPLICIT: f"no MX records ({secure}): the domain itself is its mail host",
        MxKind.NXDOMAIN: f"the domain does not exist ({secure})",
        MxKind.INVALID: f"every MX target is the root or a TLD ({secure})",
        MxKind.FAILED: f"the MX lookup failed: {mx.error} ({mx.dnssec.value})",
    }
    yield f"1. MX lookup: {kinds[mx.kind]}"
    if mx.kind in (MxKind.HOSTS, MxKind.IMPLICIT) and not mx.dane_applies:
        yield "   The MX answer is not DNSSEC-secure, so DANE does not apply (RFC 7672 2.2.1)."
    for step, host in enumerate(result.hosts, start=2):
        yield from _explain_host(step, host)
    yield f"Verdict: {result.verdict.value}" + (f" ({result.error})" if result.error else "")
    yield from _explain_policies(result)
    if result.days_ahead is not None and result.verdict_ahead is not None:
        yield f"In {result.days_ahead} days, same records and chains: {result.verdict_ahead.value}"
        if result.effective_ahead is not None:
            yield f"  effective outcome then: {result.effective_ahead.outcome.value}"


def _explain_policies(result: DomainResult) -> Iterator[str]:
    """MTA-STS (RFC 8461), TLS-RPT (RFC 8460) and what a sender applies."""
    p = result.policies
    if p is None:
        return
    record = p.sts.record
    detail = f" (id {record.id})" if record.id else (f" ({record.error})" if record.error else "")
    yield f"MTA-STS record at _mta-sts.{result.domain}: {record.status.value}{detail}"
    fetch = p.sts.fetch
    if fetch is not None:
        why = f" ({fetch.error})" if fetch.error else ""
        yield f"  policy fetch from mta-sts.{result.domain}: {fetch.status.value}{why}"
    policy = p.sts.policy
    if policy is not None and policy.ok and policy.mode is not None:
        mx = ", ".join(policy.mx) or "none"
        yield f"  policy: mode {policy.mode.value}, max_age {policy.max_age}, mx {mx}"
    elif policy is not None:
        yield f"  policy does not parse: {policy.error}"
    rpt = p.tlsrpt
    where = f"_smtp._tls.{result.domain}"
    rua = f": {', '.join(rpt.rua)}" if rpt.rua else (f" ({rpt.error})" if rpt.error else "")
    yield f"TLS-RPT record at {where}: {rpt.status.value}{rua}"
    if result.effective is not None:
        e = result.effective
        yield f"A sender with DANE and MTA-STS: {e.policy.value}, {e.outcome.value} ({e.reason})"


def _explain_host(step: int, host: HostResult) -> Iterator[str]:
    r = host.resolution
    name = names.relative(host.host)
    expanded = r.addresses.expanded
    alias = f" (alias of {names.relative(expanded)})" if expanded else ""
    addresses = ", ".join(r.addresses.addresses) or "none"
    yield f"{step}. MX host {name}{alias}, preference {host.preference}"
    yield f"   addresses: {addresses} ({r.addresses.dnssec.value})"
    tlsa = r.tlsa
    where = f"_25._tcp.{names.relative(tlsa.base)}"
    if tlsa.state.value == "records":
        yield f"   TLSA at {where}: {len(tlsa.records)} record(s), secure"
        # One depth per record (scanner.match.depths); none without a chain.
        depths = host.depths or (None,) * len(tlsa.records)
        for record, depth in zip(tlsa.records, depths, strict=True):
            text = record.to_text()
            yield f"     {text[:80]}{'...' if len(text) > 80 else ''}"
            if depth is not None:
                yield f"       {_depth_seen(depth)}"
    elif tlsa.state.value == "not_looked_up":
        yield "   TLSA not looked up: the address records are not secure"
    else:
        yield f"   TLSA at {where}: {tlsa.state.value}" + (f" ({tlsa.error})" if tlsa.error else "")
    for a in host.addresses:
        s = a.session
        if s.status is SmtpStatus.TLS_OK:
            chain = f"chain of {len(s.chain)} certificate(s)"
            yield f"   {s.address}: STARTTLS ok, {s.tls_version}, {s.cipher}, {chain}"
        else:
            yield f"   {s.address}: {s.status.value}" + (f" ({s.error})" if s.error else "")
        if not host.by_dns and a.verdict is not DaneVerdict.NOT_TESTED:
            match = f", record {a.matched} at depth {a.depth}" if a.matched else ""
            yield f"     -> {a.verdict.value}: {a.reason}{match}"
    yield f"   host verdict: {host.verdict.value} ({host.reason})"
    if host.sts is not None:
        why = f" ({host.sts.error})" if host.sts.error else ""
        yield f"   under the MTA-STS policy: {host.sts.status.value}{why}"
    if host.requiretls:
        yield "   REQUIRETLS offered after STARTTLS (RFC 8689)"
    if host.downgrade:
        yield f"   STARTTLS downgrade signs: {', '.join(s.value for s in host.downgrade)}"
    if host.verdict_ahead is not None and host.verdict_ahead is not host.verdict:
        yield f"   --days-ahead: this host's verdict becomes {host.verdict_ahead.value}"


def _depth_seen(depth: int) -> str:
    """Where a record matches the chains the host presented, whatever its
    usage says: the record a rollover left behind matches nothing."""
    if depth == 0:
        return "matches the leaf certificate (depth 0)"
    if depth > 0:
        return f"matches the certificate at depth {depth} of the chain"
    return "matches no certificate presented"


def exit_status(result: DomainResult) -> int:
    return EXIT_BY_VERDICT.get(result.verdict, EXIT_NO_DANE)


def print_explanation(result: DomainResult, out: TextIO) -> None:
    # Banners, replies, errors and names are the remote's text: escaped
    # here, at the terminal, and kept as received in the result.
    for line in explain(result):
        print(printable(line), file=out)
