"""The DNS client against fake resolvers started in-process on loopback.

Every test ends with the client's pending count at zero: nothing leaks,
whatever the resolver did.
"""

from __future__ import annotations

import asyncio
import gc
import random
import weakref
from collections.abc import Callable
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest

from scanner.resolve.client import DnsClient, ResolverSettings, parse_server
from scanner.resolve.message import Mx, RdType
from scanner.status import DnsOutcome, DnssecStatus
from scanner.tlsa import TlsaRecord
from tests.unit.fake_resolver import (
    Run,
    always,
    client_for,
    dead_port,
    fake_resolver,
    loop_runner,
    mx_answer,
    response,
    settings,
)


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Each test on both event loops the scanner may run on."""
    return loop_runner(request.param)


# --- answers ------------------------------------------------------------------


def test_answer_with_cname_chain(run: Run) -> None:
    def reply(query: dns.message.Message) -> bytes:
        return response(
            query,
            "example.com. 600 CNAME mail.example.net.",
            "mail.example.net. 300 MX 10 mx1.example.net.",
            "mail.example.net. 300 MX 20 mx2.example.net.",
            flags=dns.flags.AD,
        )

    async def main() -> None:
        async with client_for(always(reply)) as (client, fake):
            answer = await client.query("Example.COM", RdType.MX)
            assert client.pending == 0
            stats = client.stats
        assert answer.outcome is DnsOutcome.ANSWER
        assert answer.dnssec is DnssecStatus.SECURE
        assert answer.mx == (Mx(10, "mx1.example.net."), Mx(20, "mx2.example.net."))
        assert (answer.qname, answer.qtype, answer.cnames) == (
            "example.com.",
            15,
            ("mail.example.net.",),
        )
        assert (answer.ttl, answer.rcode, answer.attempts) == (300, 0, 1)
        assert answer.server == client.settings.servers[0]
        assert not answer.tcp
        assert 0 < answer.elapsed < 0.15
        assert (stats.sent, stats.accepted, stats.ignored) == (1, 1, 0)
        sent = fake.queries[0]
        assert sent.flags & (dns.flags.RD | dns.flags.AD) == dns.flags.RD | dns.flags.AD
        assert (sent.edns, sent.payload, sent.ednsflags & dns.flags.DO) == (0, 1232, dns.flags.DO)

    run(main())


@pytest.mark.parametrize(
    ("rcode", "ede", "outcome", "status"),
    [
        (dns.rcode.NXDOMAIN, None, DnsOutcome.NXDOMAIN, DnssecStatus.INSECURE),
        (dns.rcode.SERVFAIL, 6, DnsOutcome.SERVFAIL, DnssecStatus.BOGUS),
        (dns.rcode.SERVFAIL, None, DnsOutcome.SERVFAIL, DnssecStatus.INDETERMINATE),
        (dns.rcode.REFUSED, None, DnsOutcome.REFUSED, DnssecStatus.INDETERMINATE),
        (dns.rcode.NOERROR, None, DnsOutcome.NODATA, DnssecStatus.INSECURE),
    ],
)
def test_negative_answers(
    run: Run, rcode: int, ede: int | None, outcome: DnsOutcome, status: DnssecStatus
) -> None:
    soa = "example. 900 SOA ns.example. host.example. 1 2 3 4 60"

    def reply(query: dns.message.Message) -> bytes:
        return response(query, authority=(soa,), rcode=rcode, ede=ede)

    async def main() -> None:
        async with client_for(always(reply)) as (client, _):
            answer = await client.query("a.example", RdType.TLSA)
            assert client.pending == 0
        assert (answer.outcome, answer.dnssec, answer.rcode, answer.ede_code) == (
            outcome,
            status,
            rcode,
            ede,
        )
        assert answer.ttl == (60 if outcome in (DnsOutcome.NXDOMAIN, DnsOutcome.NODATA) else None)

    run(main())


def test_question_matches_case_insensitively(run: Run) -> None:
    def reply(query: dns.message.Message) -> bytes:
        query.question[0].name = dns.name.from_text("A.EXAMPLE.")  # 0x20-style echo
        return mx_answer(query)

    async def main() -> None:
        async with client_for(always(reply)) as (client, _):
            answer = await client.query("a.example", RdType.MX)
            assert client.pending == 0
        assert answer.outcome is DnsOutcome.ANSWER
        assert answer.mx == (Mx(10, "mx.example."),)

    run(main())


def test_ipv6_resolver(run: Run) -> None:
    async def main() -> None:
        async with client_for(always(mx_answer), host="::1") as (client, _):
            answer = await client.query("a.example", RdType.MX)
            assert client.pending == 0
        assert answer.outcome is DnsOutcome.ANSWER
        assert answer.server == client.settings.servers[0]

    run(main())


# --- bad resolvers ------------------------------------------------------------------


def test_resolver_down_fails_fast(run: Run) -> None:
    async def main() -> None:
        server = dead_port()
        async with DnsClient(settings(server, timeout=2.0)) as client:
            answer = await client.query("a.example", RdType.MX)
            assert client.pending == 0
            stats = client.stats
        assert answer.outcome is DnsOutcome.REFUSED
        assert answer.rcode is None  # not an RCODE: nothing answered
        assert "refused" in answer.error.lower()
        assert answer.elapsed < 1.0  # the ICMP error, not the 2 s timeout
        assert (answer.attempts, stats.refused, stats.timeouts) == (3, 3, 0)

    run(main())


def test_fails_over_to_the_next_resolver(run: Run) -> None:
    async def main() -> None:
        async with (
            fake_resolver(always(mx_answer)) as (server, _),
            DnsClient(settings(dead_port(), server, timeout=2.0)) as client,
        ):
            answers = [await client.query(f"{i}.example", RdType.MX) for i in range(2)]
            assert client.pending == 0
            assert client.stats.refused == 1
        assert [a.outcome for a in answers] == [DnsOutcome.ANSWER] * 2
        assert [a.server for a in answers] == [server] * 2
        assert sorted(a.attempts for a in answers) == [1, 2]

    run(main())


def for_other(query: dns.message.Message, name: str, rdtype: str, rdclass: str = "IN") -> bytes:
    """A well-formed reply with the query's ID to some other question."""
    other = dns.message.make_query(name, rdtype, rdclass=rdclass, id=query.id)
    return mx_answer(other)


@pytest.mark.parametrize(
    "garbage",
    [
        lambda query: b"\x00\x01\x02",
        lambda query: random.Random(query.id).randbytes(200),
        lambda query: query.to_wire(),  # QR clear
        lambda query: (query.id ^ 1).to_bytes(2, "big") + mx_answer(query)[2:],
        lambda query: for_other(query, "b.example", "MX"),
        lambda query: for_other(query, "a.example", "A"),
        lambda query: for_other(query, "a.example", "MX", "CH"),
    ],
    ids=["short", "random", "echo", "other-id", "other-name", "other-type", "other-class"],
)
def test_unmatched_replies_are_ignored(
    run: Run, garbage: Callable[[dns.message.Message], bytes]
) -> None:
    async def main() -> None:
        async with client_for(always(garbage), timeout=0.05) as (client, _):
            answer = await client.query("a.example", RdType.MX)
            assert client.pending == 0
            stats = client.stats
        assert answer.outcome is DnsOutcome.TIMEOUT
        assert answer.error == "no answer after 3 attempts (3 timed out)"
        assert (stats.sent, stats.ignored, stats.accepted) == (3, 3, 0)

    run(main())


def test_broken_answer_to_our_question_is_malformed(run: Run) -> None:
    async def main() -> None:
        async with client_for(always(lambda query: mx_answer(query)[:-1])) as (client, _):
            answer = await client.query("a.example", RdType.MX)
            assert client.pending == 0
        assert answer.outcome is DnsOutcome.MALFORMED
        assert answer.error.endswith("runs past the end of the message")
        assert answer.dnssec is DnssecStatus.INDETERMINATE

    run(main())


# --- TCP ----------------------------------------------------------------------


TLSA_SET = tuple(f"_25._tcp.mx.example. 300 TLSA 3 1 2 {i:02x}{'ab' * 63}" for i in range(30))


def truncated(query: dns.message.Message) -> bytes:
    return response(query, flags=dns.flags.TC)


def full_tlsa(query: dns.message.Message) -> bytes:
    return response(query, *TLSA_SET, flags=dns.flags.AD)


def test_tcp_after_tc(run: Run) -> None:
    async def main() -> None:
        async with client_for(always(truncated), tcp=full_tlsa) as (client, _):
            answer = await client.query("_25._tcp.mx.example", RdType.TLSA)
            assert client.pending == 0
            assert client.stats.tcp == 1
        assert (answer.outcome, answer.tcp, answer.ad) == (DnsOutcome.ANSWER, True, True)
        assert len(answer.tlsa) == 30
        assert answer.tlsa[0] == TlsaRecord(3, 1, 2, bytes.fromhex("00" + "ab" * 63))

    run(main())


def test_tc_and_no_tcp_is_truncated(run: Run) -> None:
    async def main() -> None:
        async with client_for(always(truncated)) as (client, _):
            answer = await client.query("_25._tcp.mx.example", RdType.TLSA)
            assert client.pending == 0
        assert answer.outcome is DnsOutcome.TRUNCATED
        assert "TCP" in answer.error
        assert "ConnectionRefusedError" in answer.error

    run(main())


@pytest.mark.parametrize(
    ("tcp_reply", "outcome", "error"),
    [
        (lambda q: mx_answer(dns.message.make_query("b.example", "TLSA")), "truncated", "match"),
        (lambda q: full_tlsa(q)[:-3], "malformed", "runs past the end of the message"),
    ],
)
def test_bad_tcp_reply(
    run: Run, tcp_reply: Callable[[dns.message.Message], bytes], outcome: str, error: str
) -> None:
    async def main() -> None:
        async with client_for(always(truncated), tcp=tcp_reply) as (client, _):
            answer = await client.query("_25._tcp.mx.example", RdType.TLSA)
            assert client.pending == 0
        assert answer.outcome == outcome
        assert error in answer.error
        assert answer.tcp

    run(main())


# --- lifecycle ----------------------------------------------------------------


def test_close_ends_pending_queries(run: Run) -> None:
    async def main() -> None:
        async with fake_resolver(lambda query, nth: []) as (server, _):
            client = DnsClient(settings(server, timeout=5.0))
            await client.start()
            task = asyncio.create_task(client.query("a.example", RdType.MX))
            await asyncio.sleep(0.05)
            assert client.pending == 1
            await client.close()
            answer = await task
            assert client.pending == 0
        assert answer.outcome is DnsOutcome.TIMEOUT
        assert answer.error == "client closed before an answer came"
        with pytest.raises(RuntimeError, match="not running"):
            await client.query("a.example", RdType.MX)

    run(main())


def test_cancelled_query_leaves_nothing_pending(run: Run) -> None:
    async def main() -> None:
        async with client_for(lambda query, nth: [], timeout=5.0) as (client, _):
            task = asyncio.create_task(client.query("a.example", RdType.MX))
            await asyncio.sleep(0.05)
            assert client.pending == 1
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert client.pending == 0

    run(main())


def test_cancelled_future_frees_its_slot_within_a_tick(run: Run) -> None:
    async def main() -> None:
        # Nothing answers "a.example"; the tick is 5 s / 20 = 0.25 s.
        answers = lambda query, nth: (  # noqa: E731
            [] if str(query.question[0].name) == "a.example." else [(mx_answer(query), 0.0)]
        )
        async with client_for(answers, timeout=5.0, max_in_flight=1) as (client, fake):
            silent = client.ask("a.example", RdType.MX)
            waiting = client.ask("b.example", RdType.MX)
            await asyncio.sleep(0.05)
            silent.cancel()
            started = asyncio.get_running_loop().time()
            # The sweep frees the slot, and the query behind it goes out.
            assert (await waiting).outcome is DnsOutcome.ANSWER
            assert asyncio.get_running_loop().time() - started < 1.0
            assert client.pending == 0
        assert [str(q.question[0].name) for q in fake.queries] == ["a.example.", "b.example."]

    run(main())


def test_an_answered_query_does_not_keep_its_answer_alive(run: Run) -> None:
    async def main() -> None:
        # The attempt stays in the timeout sweep's FIFO until its deadline
        # (2 s); what it holds then must not include the answer.
        async with client_for(always(mx_answer), timeout=2.0) as (client, _):
            future = client.ask("a.example", RdType.MX)
            assert (await future).outcome is DnsOutcome.ANSWER
            gone = weakref.ref(future)
            del future
            await asyncio.sleep(0)  # the loop drops the callback that woke us
            gc.collect()
            assert gone() is None

    run(main())


def test_unencodable_name_is_malformed_and_sends_nothing(run: Run) -> None:
    async def main() -> None:
        async with client_for(always(mx_answer)) as (client, _):
            answer = await client.query("_25._tcp." + "a" * 64 + ".example", RdType.TLSA)
            assert (client.pending, client.stats.sent) == (0, 0)
        assert answer.outcome is DnsOutcome.MALFORMED
        assert answer.error.startswith("cannot query: label of 64 octets")

    run(main())


def test_query_before_start_is_an_error() -> None:
    async def main() -> None:
        with pytest.raises(RuntimeError, match="not running"):
            await DnsClient(ResolverSettings()).query("a.example", RdType.MX)

    asyncio.run(main())


# --- settings -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "address"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[2001:DB8::1]", ("2001:db8::1", 53)),
    ],
)
def test_parse_server(text: str, address: tuple[str, int]) -> None:
    assert parse_server(text) == address


@pytest.mark.parametrize(
    "text", ["resolver.example", "127.0.0.1:0", "127.0.0.1:65536", "[::1", "[::1]x", "1.2.3.4:x"]
)
def test_parse_server_rejects(text: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the message varies by case)
        parse_server(text)


@pytest.mark.parametrize(
    "overrides",
    [
        {"servers": ()},
        {"servers": ("localhost",)},
        {"timeout": 0},
        {"tcp_timeout": -1},
        {"backoff": 0.5},
        {"retries": -1},
        {"max_in_flight": 0},
        {"sockets": 0},
        {"max_in_flight": 20_000, "retries": 1},
        {"payload": 511},
    ],
)
def test_settings_are_validated(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 (the message varies by case)
        ResolverSettings(**overrides)
