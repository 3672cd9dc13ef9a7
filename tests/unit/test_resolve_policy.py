"""RFC 7672 discovery rules, as tables of answers and the decisions they give."""

from __future__ import annotations

import asyncio

import pytest

from scanner.cache import SingleFlightLru
from scanner.resolve.answer import DnsAnswer
from scanner.resolve.message import Mx, RdType
from scanner.resolve.policy import (
    AddressDecision,
    MxKind,
    TlsaState,
    classify_tlsa,
    decide_addresses,
    decide_mx,
    dns_verdict,
    reference_identifiers,
    tlsa_bases,
    tlsa_lookup,
    try_next_base,
)
from scanner.status import DaneVerdict, DnsOutcome
from scanner.tlsa import TlsaRecord

D = "example.test."
OK, NODATA, NX = DnsOutcome.ANSWER, DnsOutcome.NODATA, DnsOutcome.NXDOMAIN
SERVFAIL, TIMEOUT = DnsOutcome.SERVFAIL, DnsOutcome.TIMEOUT
TLSA_311 = TlsaRecord(3, 1, 1, bytes(32))


def mx(outcome: DnsOutcome, *records: Mx, ad: bool = True, ede: int | None = None) -> DnsAnswer:
    return DnsAnswer(D, int(RdType.MX), outcome, ad=ad, records=records, ede_code=ede)


@pytest.mark.parametrize(
    ("answer", "kind", "dnssec", "targets"),
    [
        (mx(OK, Mx(10, "mx.example.test.")), MxKind.HOSTS, "secure", ["mx.example.test."]),
        (mx(OK, Mx(10, "MX.Example.Test.")), MxKind.HOSTS, "secure", ["mx.example.test."]),
        (
            mx(OK, Mx(20, "b.example.test."), Mx(10, "a.example.test."), Mx(10, "c.example.test.")),
            MxKind.HOSTS, "secure", ["a.example.test.", "c.example.test.", "b.example.test."],
        ),
        # a duplicate keeps its best preference
        (
            mx(OK, Mx(30, "a.example.test."), Mx(5, "a.example.test."), Mx(10, "b.example.test.")),
            MxKind.HOSTS, "secure", ["a.example.test.", "b.example.test."],
        ),
        (mx(OK, Mx(10, "mx.example.test."), ad=False), MxKind.HOSTS, "insecure",
         ["mx.example.test."]),
        (mx(OK, Mx(0, ".")), MxKind.NULL, "secure", []),
        # "." among other records is not a null MX: it is dropped as a root target
        (mx(OK, Mx(0, "."), Mx(10, "mx.example.test.")), MxKind.HOSTS, "secure",
         ["mx.example.test."]),
        (mx(OK, Mx(10, "test.")), MxKind.INVALID, "secure", []),
        (mx(NODATA), MxKind.IMPLICIT, "secure", [D]),
        (mx(NODATA, ad=False), MxKind.IMPLICIT, "insecure", [D]),
        (mx(NX), MxKind.NXDOMAIN, "secure", []),
        (mx(SERVFAIL, ad=False, ede=6), MxKind.FAILED, "bogus", []),
        (mx(SERVFAIL, ad=False), MxKind.FAILED, "indeterminate", []),
        (mx(TIMEOUT, ad=False), MxKind.FAILED, "indeterminate", []),
    ],
)  # fmt: skip
def test_decide_mx(answer: DnsAnswer, kind: MxKind, dnssec: str, targets: list[str]) -> None:
    decision = decide_mx(D, answer, max_mx=10)
    assert decision.kind is kind
    assert decision.dnssec == dnssec
    assert [t.host for t in decision.targets] == targets


def test_max_mx_keeps_the_most_preferred() -> None:
    answer = mx(OK, *(Mx(i, f"mx{i}.example.test.") for i in range(5, 0, -1)))
    decision = decide_mx(D, answer, max_mx=2)
    assert [t.host for t in decision.targets] == ["mx1.example.test.", "mx2.example.test."]


def test_dane_applies_only_with_secure_hosts_or_implicit_mx() -> None:
    assert decide_mx(D, mx(OK, Mx(1, "a.example.test.")), max_mx=5).dane_applies
    assert decide_mx(D, mx(NODATA), max_mx=5).dane_applies
    assert not decide_mx(D, mx(OK, Mx(1, "a.example.test."), ad=False), max_mx=5).dane_applies
    assert not decide_mx(D, mx(OK, Mx(0, ".")), max_mx=5).dane_applies


H = "mx.example.test."


def addr(
    rdtype: RdType,
    outcome: DnsOutcome,
    *records: str,
    ad: bool = True,
    cnames: tuple[str, ...] = (),
    ede: int | None = None,
) -> DnsAnswer:
    return DnsAnswer(
        H, int(rdtype), outcome, ad=ad, records=records, cnames=cnames, ttl=300, ede_code=ede
    )


@pytest.mark.parametrize(
    ("a", "aaaa", "dnssec", "addresses"),
    [
        (addr(RdType.A, OK, "127.0.0.5"), addr(RdType.AAAA, NODATA), "secure", ["127.0.0.5"]),
        (addr(RdType.A, OK, "127.0.0.5"), addr(RdType.AAAA, OK, "::1"), "secure",
         ["127.0.0.5", "::1"]),
        (addr(RdType.A, OK, "127.0.0.5"), addr(RdType.AAAA, NODATA, ad=False), "insecure",
         ["127.0.0.5"]),
        (addr(RdType.A, OK, "127.0.0.5"), addr(RdType.AAAA, SERVFAIL, ad=False, ede=7),
         "bogus", ["127.0.0.5"]),
        # a lost AAAA answer does not make secure A records insecure
        (addr(RdType.A, OK, "127.0.0.5"), addr(RdType.AAAA, TIMEOUT, ad=False), "secure",
         ["127.0.0.5"]),
        (addr(RdType.A, TIMEOUT, ad=False), addr(RdType.AAAA, TIMEOUT, ad=False),
         "indeterminate", []),
        (addr(RdType.A, NX), addr(RdType.AAAA, NX), "secure", []),
    ],
)  # fmt: skip
def test_decide_addresses(a: DnsAnswer, aaaa: DnsAnswer, dnssec: str, addresses: list[str]) -> None:
    decision = decide_addresses(H, a, aaaa)
    assert decision.dnssec == dnssec
    assert list(decision.addresses) == addresses


def test_secure_cname_tries_expanded_name_first() -> None:
    target = "srv.example.test."
    a = addr(RdType.A, OK, "127.0.0.9", cnames=(target,))
    aaaa = addr(RdType.AAAA, NODATA, cnames=(target,))
    decision = decide_addresses(H, a, aaaa)
    assert decision.expanded == target
    assert tlsa_bases(H, decision) == (target, H)


def test_insecure_cname_uses_only_the_original_name() -> None:
    target = "srv.elsewhere.alt."
    a = addr(RdType.A, OK, "127.0.0.9", cnames=(target,), ad=False)
    decision = decide_addresses(H, a, addr(RdType.AAAA, NODATA, ad=False))
    assert tlsa_bases(H, decision) == (H,)


def tlsa(
    outcome: DnsOutcome, *records: TlsaRecord, ad: bool = True, ede: int | None = None
) -> DnsAnswer:
    return DnsAnswer(
        f"_25._tcp.{H}", int(RdType.TLSA), outcome, ad=ad, records=records, ede_code=ede
    )


@pytest.mark.parametrize(
    ("answer", "state", "next_base"),
    [
        (tlsa(OK, TLSA_311), TlsaState.RECORDS, False),
        (tlsa(NX), TlsaState.NXDOMAIN, True),
        (tlsa(NODATA), TlsaState.NODATA, True),
        (tlsa(OK, TLSA_311, ad=False), TlsaState.INSECURE, True),
        (tlsa(NX, ad=False), TlsaState.INSECURE, True),
        (tlsa(SERVFAIL, ad=False, ede=6), TlsaState.BOGUS, False),
        (tlsa(SERVFAIL, ad=False, ede=22), TlsaState.SERVFAIL, False),
        (tlsa(TIMEOUT, ad=False), TlsaState.TIMEOUT, False),
        (tlsa(DnsOutcome.MALFORMED, ad=False), TlsaState.ERROR, False),
    ],
)
def test_classify_tlsa(answer: DnsAnswer, state: TlsaState, next_base: bool) -> None:
    assert classify_tlsa(answer) is state
    assert try_next_base(state) is next_base


SECURE_ADDR = decide_addresses(H, addr(RdType.A, OK, "127.0.0.5"), addr(RdType.AAAA, NODATA))
INSECURE_ADDR = decide_addresses(
    H, addr(RdType.A, OK, "127.0.0.5", ad=False), addr(RdType.AAAA, NODATA, ad=False)
)


@pytest.mark.parametrize(
    ("mx_secure", "addresses", "answer", "verdict"),
    [
        (True, SECURE_ADDR, tlsa(OK, TLSA_311), None),
        (False, SECURE_ADDR, tlsa(OK, TLSA_311), DaneVerdict.NO_DANE_INSECURE),
        (True, INSECURE_ADDR, tlsa(OK, TLSA_311), DaneVerdict.NO_DANE_INSECURE),
        (True, SECURE_ADDR, tlsa(NX), DaneVerdict.NO_DANE_ABSENT),
        (True, SECURE_ADDR, tlsa(NODATA), DaneVerdict.NO_DANE_ABSENT),
        (True, SECURE_ADDR, tlsa(OK, TLSA_311, ad=False), DaneVerdict.NO_DANE_INSECURE),
        (True, SECURE_ADDR, tlsa(SERVFAIL, ad=False, ede=6), DaneVerdict.FAIL_DNS),
        (True, SECURE_ADDR, tlsa(SERVFAIL, ad=False), DaneVerdict.FAIL_DNS),
        (True, SECURE_ADDR, tlsa(TIMEOUT, ad=False), DaneVerdict.FAIL_DNS),
    ],
)
def test_dns_verdict(
    mx_secure: bool, addresses: AddressDecision, answer: DnsAnswer, verdict: DaneVerdict | None
) -> None:
    assert dns_verdict(mx_secure, addresses, tlsa_lookup(H, answer)) == verdict


def test_reference_identifiers() -> None:
    assert reference_identifiers(H, H, None) == ("mx.example.test",)
    assert reference_identifiers(H, "srv.example.test.", None) == (
        "srv.example.test",
        "mx.example.test",
    )
    assert reference_identifiers(D, D, D) == ("example.test",)


def test_single_flight_cache_computes_once_and_evicts() -> None:
    calls: list[str] = []

    async def main() -> None:
        cache: SingleFlightLru[str, str] = SingleFlightLru(2)

        async def compute(key: str) -> str:
            calls.append(key)
            await asyncio.sleep(0.01)
            return key.upper()

        got = await asyncio.gather(*(cache.get("a", lambda: compute("a")) for _ in range(50)))
        assert got == ["A"] * 50
        await cache.get("b", lambda: compute("b"))
        await cache.get("c", lambda: compute("c"))
        assert len(cache) == 2
        await cache.get("a", lambda: compute("a"))  # evicted: computed again

    asyncio.run(main())
    assert calls == ["a", "b", "c", "a"]


def test_single_flight_cache_peek_and_start() -> None:
    async def main() -> None:
        cache: SingleFlightLru[str, str] = SingleFlightLru(4)
        release = asyncio.Event()

        async def compute() -> str:
            await release.wait()
            return "value"

        assert cache.peek("k") is None
        first = cache.start("k", compute)
        assert cache.start("k", compute) is first  # joined, not started twice
        waiter = asyncio.ensure_future(asyncio.shield(first))
        await asyncio.sleep(0)
        waiter.cancel()  # a caller giving up leaves the computation running
        await asyncio.sleep(0)
        assert not first.cancelled()
        assert cache.peek("k") is None  # not finished yet
        release.set()
        assert await first == "value"
        assert cache.peek("k") == "value"
        assert (cache.misses, cache.joined, cache.hits, cache.running) == (1, 1, 1, 0)

    asyncio.run(main())
