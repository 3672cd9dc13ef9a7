"""The resolve stage's driver: MX, A/AAAA and TLSA queries per domain, in the
order RFC 7672 section 2.2 gives (the decisions are scanner.resolve.policy's),
and beside them the domain's policy records.

Per-host results (addresses and TLSA RRset) do not depend on the domain that
led to the host, so they are cached with single-flight: domains that share a
provider cost one set of host lookups. A result that rests on a transient
answer (``answer.is_transient``: a timeout, a SERVFAIL that is no validation
failure) says so, and a domain looked up again (``refresh``) does not reuse it.

A host's TLSA RRset is looked up whenever its addresses are secure, whether
the MX RRset that named it is secure or not: the strict verdict (RFC 7672
section 2.2.1 as DESIGN.md reads it) sets it aside under an insecure MX
RRset, while a sender that uses DANE for such hosts (section 2.2.1 allows
it; Postfix does by default) uses it. So ``HostResolution.tlsa`` serves both
readings, at no query beyond today's (the host cache is shared by both).

With ``policies`` on, the TXT RRsets at ``_mta-sts.<domain>`` (RFC 8461
section 3.1) and ``_smtp._tls.<domain>`` (RFC 8460 section 3) are asked
together with the MX RRset, so they add queries but no round trip. They
are per domain, so not cached. A transient answer to either counts like
any other transient answer of the domain: ``DomainResolution.transient``
is set, and the pipeline looks the domain up again after a pause, at most
``--retries`` times, then writes what it has (with ``transient`` on the
row): never a retry without end.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Protocol

from scanner import names
from scanner.cache import SingleFlightLru
from scanner.resolve.answer import DnsAnswer, is_transient
from scanner.resolve.message import RdType
from scanner.resolve.policy import (
    AddressDecision,
    MxDecision,
    MxKind,
    TlsaLookup,
    TlsaState,
    TxtLookup,
    decide_addresses,
    decide_mx,
    mta_sts_name,
    policy_host_name,
    tlsa_bases,
    tlsa_lookup,
    tlsa_name,
    tlsrpt_name,
    try_next_base,
    txt_lookup,
)
from scanner.status import DnssecStatus


@dataclass(frozen=True, slots=True)
class HostResolution:
    host: str
    addresses: AddressDecision
    # Looked up when the addresses are secure, also under an insecure MX
    # RRset (see the module docstring): policy.dns_verdict decides its use.
    tlsa: TlsaLookup
    transient: bool = False  # an answer it rests on may differ if asked again


@dataclass(frozen=True, slots=True)
class HostAddresses:
    """A and AAAA of a host with no TLSA lookup (the MTA-STS policy host)."""

    host: str
    addresses: AddressDecision
    transient: bool = False


@dataclass(frozen=True, slots=True)
class DomainResolution:
    domain: str  # absolute, with the trailing dot
    mx: MxDecision
    mx_ttl: int | None
    hosts: tuple[HostResolution, ...]  # in the order of mx.targets
    # The MX answer, a host's or a policy TXT lookup's rests on a transient answer.
    transient: bool = False
    mta_sts_txt: TxtLookup | None = None  # _mta-sts.<domain>; None: not looked up
    tlsrpt_txt: TxtLookup | None = None  # _smtp._tls.<domain>; None: not looked up


class Asker(Protocol):
    """What the Discoverer needs of a DNS client: scanner.resolve.client's
    DnsClient, or a stand-in that records or replays its answers."""

    def ask(self, name: str, rdtype: int) -> asyncio.Future[DnsAnswer]: ...


class Discoverer:
    """Resolves domains through one DnsClient (any Asker), caching per MX host.

    ``policies``: also look up each domain's MTA-STS and TLS-RPT records.
    """

    def __init__(
        self,
        client: Asker,
        *,
        max_mx: int = 10,
        cache_size: int = 100_000,
        policies: bool = True,
    ) -> None:
        self._client = client
        self._max_mx = max_mx
        self._policies = policies
        self._hosts: SingleFlightLru[str, HostResolution] = SingleFlightLru(cache_size)

    @property
    def host_cache(self) -> SingleFlightLru[str, HostResolution]:
        return self._hosts

    def forget_transient(self) -> int:
        """Drop every cached host result that rests on a transient answer
        (after the resolver came back from an outage); how many there were."""
        return self._hosts.forget_where(_is_transient_host)

    async def domain(self, domain: str, *, refresh: bool = False) -> DomainResolution:
        """``refresh``: a cached host result that rests on a transient answer
        is looked up again (the domain is being retried)."""
        name = names.absolute(domain)
        asked = self._client.ask(name, RdType.MX)
        if not self._policies:
            mx, ttl, hosts, transient = await self._mx_hosts(name, await asked, refresh)
            return DomainResolution(name, mx, ttl, hosts, transient)
        # Sent with the MX query, before it is awaited: no round trip of their own.
        asked_sts = self._client.ask(mta_sts_name(name), RdType.TXT)
        asked_rpt = self._client.ask(tlsrpt_name(name), RdType.TXT)
        try:
            mx, ttl, hosts, transient = await self._mx_hosts(name, await asked, refresh)
            sts, rpt = txt_lookup(await asked_sts), txt_lookup(await asked_rpt)
        except asyncio.CancelledError:
            asked_sts.cancel()
            asked_rpt.cancel()
            raise
        transient = transient or sts.transient or rpt.transient
        return DomainResolution(name, mx, ttl, hosts, transient, sts, rpt)

    async def policy_host_addresses(self, domain: str) -> HostAddresses:
        """A and AAAA of ``mta-sts.<domain>`` (RFC 8461 section 3.3), for the
        policy fetch. Not through the host cache: the name is the domain's
        own, so a cache would only push providers' MX hosts out, and an MX
        host's entry needs a TLSA lookup this host does not."""
        host = policy_host_name(names.absolute(domain))
        addresses, transient = await self._addresses(host)
        return HostAddresses(host, addresses, transient)

    async def _mx_hosts(
        self, name: str, answer: DnsAnswer, refresh: bool
    ) -> tuple[MxDecision, int | None, tuple[HostResolution, ...], bool]:
        mx = decide_mx(name, answer, max_mx=self._max_mx)
        transient = is_transient(answer.outcome, answer.ede_code)
        if mx.kind not in (MxKind.HOSTS, MxKind.IMPLICIT):
            return mx, answer.ttl, (), transient
        if refresh:
            for target in mx.targets:
                cached = self._hosts.peek(target.host)
                if cached is not None and cached.transient:
                    self._hosts.forget(target.host)
        # Hosts are looked up concurrently; a host already resolved (a
        # provider's, most often) costs a dict lookup, no coroutine or task.
        found = [self._hosts.peek(t.host) or self._start(t.host) for t in mx.targets]
        hosts: list[HostResolution] = []
        for item in found:
            hosts.append(item if isinstance(item, HostResolution) else await asyncio.shield(item))
        transient = transient or any(host.transient for host in hosts)
        return mx, answer.ttl, tuple(hosts), transient

    def _start(self, host: str) -> asyncio.Future[HostResolution]:
        return self._hosts.start(host, lambda: self._lookup_host(host))

    async def _addresses(self, host: str) -> tuple[AddressDecision, bool]:
        # Both asked before either is awaited: they run concurrently.
        asked_a = self._client.ask(host, RdType.A)
        asked_aaaa = self._client.ask(host, RdType.AAAA)
        try:
            a, aaaa = await asked_a, await asked_aaaa
        except asyncio.CancelledError:
            asked_aaaa.cancel()
            raise
        transient = is_transient(a.outcome, a.ede_code) or is_transient(aaaa.outcome, aaaa.ede_code)
        return decide_addresses(host, a, aaaa), transient

    async def _lookup_host(self, host: str) -> HostResolution:
        addresses, transient = await self._addresses(host)
        if addresses.dnssec is not DnssecStatus.SECURE:
            # RFC 7672 section 2.2.2: TLSA of a host with insecure or failed
            # address records is not used, so it is not looked up either.
            skipped = TlsaLookup(host, TlsaState.NOT_LOOKED_UP)
            return HostResolution(host, addresses, skipped, transient)
        lookup = TlsaLookup(host, TlsaState.NOT_LOOKED_UP)
        for base in tlsa_bases(host, addresses):
            answer = await self._client.ask(tlsa_name(base), RdType.TLSA)
            transient = transient or is_transient(answer.outcome, answer.ede_code)
            lookup = tlsa_lookup(base, answer)
            if not try_next_base(lookup.state):
                break
        return HostResolution(host, addresses, lookup, transient)


def _is_transient_host(host: HostResolution) -> bool:
    return host.transient
