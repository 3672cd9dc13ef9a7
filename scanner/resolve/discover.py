"""The resolve stage's driver: MX, A/AAAA and TLSA queries per domain, in the
order RFC 7672 section 2.2 gives (the decisions are scanner.resolve.policy's).

Per-host results (addresses and TLSA RRset) do not depend on the domain that
led to the host, so they are cached with single-flight: domains that share a
provider cost one set of host lookups. A result that rests on a transient
answer (``answer.is_transient``: a timeout, a SERVFAIL that is no validation
failure) says so, and a domain looked up again (``refresh``) does not reuse it.
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
    decide_addresses,
    decide_mx,
    tlsa_bases,
    tlsa_lookup,
    tlsa_name,
    try_next_base,
)
from scanner.status import DnssecStatus


@dataclass(frozen=True, slots=True)
class HostResolution:
    host: str
    addresses: AddressDecision
    tlsa: TlsaLookup
    transient: bool = False  # an answer it rests on may differ if asked again


@dataclass(frozen=True, slots=True)
class DomainResolution:
    domain: str  # absolute, with the trailing dot
    mx: MxDecision
    mx_ttl: int | None
    hosts: tuple[HostResolution, ...]  # in the order of mx.targets
    transient: bool = False  # the MX answer or a host's rests on a transient answer


class Asker(Protocol):
    """What the Discoverer needs of a DNS client: scanner.resolve.client's
    DnsClient, or a stand-in that records or replays its answers."""

    def ask(self, name: str, rdtype: int) -> asyncio.Future[DnsAnswer]: ...


class Discoverer:
    """Resolves domains through one DnsClient (any Asker), caching per MX host."""

    def __init__(self, client: Asker, *, max_mx: int = 10, cache_size: int = 100_000) -> None:
        self._client = client
        self._max_mx = max_mx
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
        answer = await self._client.ask(name, RdType.MX)
        mx = decide_mx(name, answer, max_mx=self._max_mx)
        if mx.kind not in (MxKind.HOSTS, MxKind.IMPLICIT):
            transient = is_transient(answer.outcome, answer.ede_code)
            return DomainResolution(name, mx, answer.ttl, (), transient)
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
        transient = is_transient(answer.outcome, answer.ede_code) or any(
            host.transient for host in hosts
        )
        return DomainResolution(name, mx, answer.ttl, tuple(hosts), transient)

    def _start(self, host: str) -> asyncio.Future[HostResolution]:
        return self._hosts.start(host, lambda: self._lookup_host(host))

    async def _lookup_host(self, host: str) -> HostResolution:
        # Both asked before either is awaited: they run concurrently.
        asked_a = self._client.ask(host, RdType.A)
        asked_aaaa = self._client.ask(host, RdType.AAAA)
        try:
            a, aaaa = await asked_a, await asked_aaaa
        except asyncio.CancelledError:
            asked_aaaa.cancel()
            raise
        addresses = decide_addresses(host, a, aaaa)
        transient = is_transient(a.outcome, a.ede_code) or is_transient(aaaa.outcome, aaaa.ede_code)
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
