"""The Discoverer (scanner.resolve.discover) over a table of answers: which
queries it asks, in what order, what it makes of them (RFC 7672 section 2.2),
and its host cache."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from scanner.resolve.answer import DnsAnswer
from scanner.resolve.discover import Discoverer, DomainResolution
from scanner.resolve.message import Mx, Rdata, RdType
from scanner.resolve.policy import MxKind, MxTarget, TlsaState, tlsa_name
from scanner.status import DnsOutcome, DnssecStatus
from scanner.tlsa import TlsaRecord

A, AAAA, MX, TLSA = RdType.A, RdType.AAAA, RdType.MX, RdType.TLSA
RECORD = TlsaRecord(3, 1, 1, b"\x01" * 32)
SERVFAIL_BOGUS = 6  # RFC 8914 section 4: DNSSEC Bogus


def answer(
    name: str,
    rdtype: int,
    *records: Rdata,
    ad: bool = True,
    outcome: DnsOutcome | None = None,
    ede: int | None = None,
    cnames: tuple[str, ...] = (),
) -> DnsAnswer:
    if outcome is None:
        outcome = DnsOutcome.ANSWER if records else DnsOutcome.NODATA
    return DnsAnswer(name, rdtype, outcome, ad=ad, records=records, cnames=cnames, ede_code=ede)


class TableAsker:
    """An Asker answering from a table of (name, type) → answer, after one
    trip round the loop as a reply would arrive; counts what it was asked.
    A question not in the table fails the test."""

    def __init__(self, *answers: DnsAnswer) -> None:
        self.table = {(a.qname, a.qtype): a for a in answers}
        self.asked: Counter[tuple[str, int]] = Counter()
        self.order: list[tuple[str, int]] = []

    def set(self, *answers: DnsAnswer) -> None:
        self.table.update({(a.qname, a.qtype): a for a in answers})

    def ask(self, name: str, rdtype: int) -> asyncio.Future[DnsAnswer]:
        key = (name, int(rdtype))
        assert key in self.table, f"unexpected query {key}"
        self.asked[key] += 1
        self.order.append(key)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[DnsAnswer] = loop.create_future()
        loop.call_soon(future.set_result, self.table[key])
        return future


def host_answers(host: str, *, ad: bool = True, tlsa: DnsAnswer | None = None) -> list[DnsAnswer]:
    """A secure (or, ``ad`` off, insecure) host with one address of each
    family and, when given, its TLSA answer."""
    found = [answer(host, A, "192.0.2.1", ad=ad), answer(host, AAAA, "2001:db8::1", ad=ad)]
    return found + ([tlsa] if tlsa is not None else [])


def tlsa(base: str, *records: Rdata, **kwargs: object) -> DnsAnswer:
    return answer(tlsa_name(base), TLSA, *records, **kwargs)  # type: ignore[arg-type]


def discover(
    asker: TableAsker,
    *domains: str,
    max_mx: int = 10,
    refresh: bool = False,
    policies: bool = False,
) -> list[DomainResolution]:
    """``policies`` off by default: the tests here are about DANE's queries
    (the policy records' are test_resolve_discover_policies.py's)."""

    async def run() -> list[DomainResolution]:
        discoverer = Discoverer(asker, max_mx=max_mx, policies=policies)
        return [await discoverer.domain(d, refresh=refresh) for d in domains]

    return asyncio.run(run())


def test_secure_mx_and_tlsa_records() -> None:
    asker = TableAsker(
        answer("example.", MX, Mx(10, "mx.example.")),
        *host_answers("mx.example.", tlsa=tlsa("mx.example.", RECORD)),
    )
    (resolution,) = discover(asker, "Example")  # made absolute and lower case
    assert resolution.domain == "example."
    assert (resolution.mx.kind, resolution.mx.dnssec) == (MxKind.HOSTS, DnssecStatus.SECURE)
    assert resolution.mx.dane_applies
    (host,) = resolution.hosts
    assert host.host == "mx.example."
    assert host.addresses.addresses == ("192.0.2.1", "2001:db8::1")
    assert (host.tlsa.state, host.tlsa.records, host.tlsa.base) == (
        TlsaState.RECORDS,
        (RECORD,),
        "mx.example.",
    )
    assert not resolution.transient
    # MX first, then A and AAAA together, then TLSA (RFC 7672 section 2.2).
    assert asker.order == [
        ("example.", MX),
        ("mx.example.", A),
        ("mx.example.", AAAA),
        (tlsa_name("mx.example."), TLSA),
    ]


def test_insecure_mx_still_resolves_its_hosts() -> None:
    asker = TableAsker(
        answer("example.", MX, Mx(10, "mx.example."), ad=False),
        *host_answers("mx.example.", tlsa=tlsa("mx.example.", RECORD)),
    )
    (resolution,) = discover(asker, "example.")
    assert resolution.mx.dnssec is DnssecStatus.INSECURE
    assert not resolution.mx.dane_applies
    assert [h.tlsa.state for h in resolution.hosts] == [TlsaState.RECORDS]


def test_bogus_mx_asks_nothing_more() -> None:
    failed = answer("example.", MX, outcome=DnsOutcome.SERVFAIL, ad=False, ede=SERVFAIL_BOGUS)
    asker = TableAsker(failed)
    (resolution,) = discover(asker, "example.")
    assert (resolution.mx.kind, resolution.mx.dnssec) == (MxKind.FAILED, DnssecStatus.BOGUS)
    assert resolution.hosts == ()
    assert not resolution.transient  # a validation failure is a fact
    assert asker.order == [("example.", MX)]


def test_null_mx_asks_nothing_more() -> None:
    asker = TableAsker(answer("example.", MX, Mx(0, ".")))
    (resolution,) = discover(asker, "example.")
    assert resolution.mx.kind is MxKind.NULL
    assert resolution.hosts == ()
    assert asker.order == [("example.", MX)]


def test_no_mx_makes_the_domain_its_own_host() -> None:
    """RFC 5321 section 5.1: the implicit MX, here the end of a CNAME chain."""
    asker = TableAsker(
        answer("example.", MX, cnames=("real.example.",)),  # NODATA at the target
        *host_answers("real.example.", tlsa=tlsa("real.example.", outcome=DnsOutcome.NXDOMAIN)),
    )
    (resolution,) = discover(asker, "example.")
    assert resolution.mx.kind is MxKind.IMPLICIT
    assert resolution.mx.targets == (MxTarget("real.example.", 0),)
    (host,) = resolution.hosts
    assert host.tlsa.state is TlsaState.NXDOMAIN


def test_a_cnamed_host_asks_the_expanded_name_first_then_the_alias() -> None:
    """RFC 7672 section 2.2.2: TLSA of the expanded name, then of the alias."""
    asker = TableAsker(
        answer("example.", MX, Mx(10, "mx.example.")),
        answer("mx.example.", A, "192.0.2.1", cnames=("srv.example.",)),
        answer("mx.example.", AAAA, cnames=("srv.example.",)),
        tlsa("srv.example."),  # secure NODATA: go on to the alias
        tlsa("mx.example.", RECORD),
    )
    (resolution,) = discover(asker, "example.")
    (host,) = resolution.hosts
    assert host.addresses.expanded == "srv.example."
    assert (host.tlsa.state, host.tlsa.base) == (TlsaState.RECORDS, "mx.example.")
    assert asker.order[-2:] == [
        (tlsa_name("srv.example."), TLSA),
        (tlsa_name("mx.example."), TLSA),
    ]


@pytest.mark.parametrize(
    ("tlsa_answer", "state"),
    [
        (tlsa("mx.example.", RECORD), TlsaState.RECORDS),
        (tlsa("mx.example.", RECORD, ad=False), TlsaState.INSECURE),
        (
            tlsa("mx.example.", outcome=DnsOutcome.SERVFAIL, ad=False, ede=SERVFAIL_BOGUS),
            TlsaState.BOGUS,
        ),
        (tlsa("mx.example.", outcome=DnsOutcome.NXDOMAIN), TlsaState.NXDOMAIN),
        (tlsa("mx.example."), TlsaState.NODATA),
    ],
)
def test_tlsa_outcomes(tlsa_answer: DnsAnswer, state: TlsaState) -> None:
    asker = TableAsker(
        answer("example.", MX, Mx(10, "mx.example.")),
        *host_answers("mx.example.", tlsa=tlsa_answer),
    )
    (resolution,) = discover(asker, "example.")
    assert [h.tlsa.state for h in resolution.hosts] == [state]
    assert not resolution.transient


def test_no_tlsa_lookup_for_a_host_with_insecure_addresses() -> None:
    """RFC 7672 section 2.2.2: such a host's TLSA would not be used."""
    asker = TableAsker(
        answer("example.", MX, Mx(10, "mx.example.")),
        *host_answers("mx.example.", ad=False),
    )
    (resolution,) = discover(asker, "example.")
    assert [h.tlsa.state for h in resolution.hosts] == [TlsaState.NOT_LOOKED_UP]
    assert all(rdtype != TLSA for _, rdtype in asker.order)


def test_max_mx_caps_the_hosts_resolved() -> None:
    hosts = [f"mx{n}.example." for n in range(4)]
    asker = TableAsker(
        answer("example.", MX, *(Mx(n, h) for n, h in enumerate(hosts))),
        *(a for h in hosts for a in host_answers(h, tlsa=tlsa(h, RECORD))),
    )
    (resolution,) = discover(asker, "example.", max_mx=2)
    assert [h.host for h in resolution.hosts] == hosts[:2]  # the most preferred
    assert {name for name, rdtype in asker.asked if rdtype == A} == set(hosts[:2])


def test_a_shared_host_costs_its_lookups_once() -> None:
    shared = host_answers("mx.provider.", tlsa=tlsa("mx.provider.", RECORD))
    asker = TableAsker(
        answer("one.example.", MX, Mx(10, "mx.provider.")),
        answer("two.example.", MX, Mx(10, "mx.provider.")),
        *shared,
    )
    one, two = discover(asker, "one.example.", "two.example.")
    assert one.hosts == two.hosts
    host_keys = [("mx.provider.", A), ("mx.provider.", AAAA), (tlsa_name("mx.provider."), TLSA)]
    assert [asker.asked[key] for key in host_keys] == [1, 1, 1]


def test_a_host_asked_by_concurrent_domains_is_looked_up_once() -> None:
    asker = TableAsker(
        *(answer(f"d{n}.example.", MX, Mx(10, "mx.provider.")) for n in range(5)),
        *host_answers("mx.provider.", tlsa=tlsa("mx.provider.", RECORD)),
    )

    async def run() -> list[DomainResolution]:
        discoverer = Discoverer(asker, policies=False)
        return list(await asyncio.gather(*(discoverer.domain(f"d{n}.example.") for n in range(5))))

    resolutions = asyncio.run(run())
    assert len({r.hosts for r in resolutions}) == 1
    assert asker.asked[("mx.provider.", A)] == 1
    assert asker.asked[(tlsa_name("mx.provider."), TLSA)] == 1


def timeout(name: str, rdtype: int) -> DnsAnswer:
    return answer(name, rdtype, outcome=DnsOutcome.TIMEOUT, ad=False)


def test_a_timed_out_mx_is_transient() -> None:
    (resolution,) = discover(TableAsker(timeout("example.", MX)), "example.")
    assert (resolution.mx.kind, resolution.transient) == (MxKind.FAILED, True)


def test_transient_host_results_are_asked_again_only_on_refresh() -> None:
    asker = TableAsker(
        answer("example.", MX, Mx(10, "mx.example.")),
        *host_answers("mx.example."),
        timeout(tlsa_name("mx.example."), TLSA),
    )

    async def run() -> tuple[DomainResolution, DomainResolution, DomainResolution]:
        discoverer = Discoverer(asker, policies=False)
        first = await discoverer.domain("example.")
        again = await discoverer.domain("example.")  # from the cache, still transient
        asker.set(tlsa("mx.example.", RECORD))
        refreshed = await discoverer.domain("example.", refresh=True)
        return first, again, refreshed

    first, again, refreshed = asyncio.run(run())
    assert (first.transient, first.hosts[0].tlsa.state) == (True, TlsaState.TIMEOUT)
    assert again.hosts == first.hosts
    assert (refreshed.transient, refreshed.hosts[0].tlsa.state) == (False, TlsaState.RECORDS)
    assert asker.asked[(tlsa_name("mx.example."), TLSA)] == 2
    assert asker.asked[("example.", MX)] == 3


def test_a_settled_host_is_not_asked_again_on_refresh() -> None:
    asker = TableAsker(
        answer("example.", MX, Mx(10, "mx.example.")),
        *host_answers("mx.example.", tlsa=tlsa("mx.example.", RECORD)),
    )
    discover(asker, "example.", "example.", refresh=True)
    assert asker.asked[("mx.example.", A)] == 1


def test_forget_transient_drops_only_transient_hosts() -> None:
    asker = TableAsker(
        answer("one.example.", MX, Mx(10, "mx.one.")),
        answer("two.example.", MX, Mx(10, "mx.two.")),
        *host_answers("mx.one.", tlsa=tlsa("mx.one.", RECORD)),
        *host_answers("mx.two."),
        timeout(tlsa_name("mx.two."), TLSA),
    )

    async def run() -> tuple[int, int]:
        discoverer = Discoverer(asker, policies=False)
        await discoverer.domain("one.example.")
        await discoverer.domain("two.example.")
        return discoverer.forget_transient(), len(discoverer.host_cache)

    assert asyncio.run(run()) == (1, 1)
