"""The DNS client against fake resolvers started in-process on loopback.

Every test ends with the client's pending count at zero: nothing leaks,
whatever the resolver did.
"""

from __future__ import annotations

import asyncio
import gc
import random
import socket
import time
import weakref
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, cast

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import pytest
import uvloop

from scanner.resolve.client import DnsClient, ResolverSettings, parse_server
from scanner.resolve.message import Mx, RdType
from scanner.status import DnsOutcome, DnssecStatus
from scanner.tlsa import TlsaRecord

Replies = list[tuple[bytes, float]]  # datagrams to send back, each after a delay
Handler = Callable[[dns.message.Message, int], Replies]  # (query, n-th query received)
Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    """Runs a test's coroutine; an exception in any callback of the loop (the
    client's timers and protocol callbacks, which only log it) fails the test."""
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(main: Coroutine[Any, Any, None]) -> None:
        errors: list[dict[str, Any]] = []
        with asyncio.Runner(loop_factory=factory) as loop:
            loop.get_loop().set_exception_handler(lambda _loop, context: errors.append(context))
            loop.run(main)
        assert not errors, f"a loop callback raised: {errors[0].get('exception')!r}"

    return runner


def rr(text: str) -> dns.rrset.RRset:
    name, ttl, rdtype, rdata = text.split(maxsplit=3)
    return dns.rrset.from_text(name, int(ttl), "IN", rdtype, rdata)


def response(
    query: dns.message.Message,
    *answer: str,
    authority: tuple[str, ...] = (),
    rcode: int = 0,
    flags: int = 0,
    ede: int | None = None,
) -> bytes:
    reply = dns.message.make_response(query)
    reply.answer.extend(rr(text) for text in answer)
    reply.authority.extend(rr(text) for text in authority)
    reply.flags |= flags
    if ede is not None:
        reply.use_edns(0, 0, 1232, options=[dns.edns.EDEOption(dns.edns.EDECode.make(ede))])
    reply.set_rcode(dns.rcode.Rcode.make(rcode))
    return reply.to_wire(max_size=65535)  # the fake decides about TC itself


def mx_answer(query: dns.message.Message) -> bytes:
    return response(query, f"{query.question[0].name} 300 MX 10 mx.example.", flags=dns.flags.AD)


class FakeResolver(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.queries: list[dns.message.Message] = []
        self.outstanding = self.most_outstanding = 0
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = dns.message.from_wire(data)
        self.queries.append(query)
        for reply, delay in self.handler(query, len(self.queries)):
            self.outstanding += 1
            self.most_outstanding = max(self.most_outstanding, self.outstanding)
            asyncio.get_running_loop().call_later(delay, self.send, reply, addr)

    def send(self, reply: bytes, addr: Any) -> None:
        self.outstanding -= 1
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


TcpHandler = Callable[[dns.message.Message], bytes]


def tcp_service(handler: TcpHandler) -> Callable[..., Coroutine[Any, Any, None]]:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        size = int.from_bytes(await reader.readexactly(2), "big")
        reply = handler(dns.message.from_wire(await reader.readexactly(size)))
        writer.write(len(reply).to_bytes(2, "big") + reply)
        await writer.drain()
        writer.close()

    return serve


@asynccontextmanager
async def fake_resolver(
    handler: Handler, host: str = "127.0.0.1", tcp: TcpHandler | None = None
) -> AsyncIterator[tuple[str, FakeResolver]]:
    """UDP on a free port, and with ``tcp`` a TCP listener on the same port."""
    loop = asyncio.get_running_loop()
    while True:
        # The TCP port first: it is the one another process may hold.
        listener = await asyncio.start_server(tcp_service(tcp), host, 0) if tcp else None
        port = listener.sockets[0].getsockname()[1] if listener else 0
        try:
            transport, fake = await loop.create_datagram_endpoint(
                lambda: FakeResolver(handler), local_addr=(host, port)
            )
            break
        except OSError:
            if listener is None:
                raise
            listener.close()
            await listener.wait_closed()
    port = transport.get_extra_info("sockname")[1]
    try:
        yield (f"[{host}]:{port}" if ":" in host else f"{host}:{port}"), fake
    finally:
        transport.close()
        if listener is not None:
            listener.close()
            await listener.wait_closed()


@asynccontextmanager
async def client_for(
    handler: Handler,
    tcp: TcpHandler | None = None,
    rng: random.Random | None = None,
    host: str = "127.0.0.1",
    **overrides: Any,
) -> AsyncIterator[tuple[DnsClient, FakeResolver]]:
    """A fake resolver and a client of it (the server is settings.servers[0])."""
    async with (
        fake_resolver(handler, host, tcp) as (server, fake),
        DnsClient(settings(server, **overrides), rng=rng) as client,
    ):
        yield client, fake


def dead_port() -> str:
    """A UDP port on which nothing listens (the kernel answers ICMP)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def settings(*servers: str, **overrides: Any) -> ResolverSettings:
    values: dict[str, Any] = {
        "timeout": 0.15,
        "retries": 2,
        "backoff": 1.0,
        "tcp_timeout": 1.0,
        "sockets": 2,
    }
    return ResolverSettings(servers=servers, **(values | overrides))


class ScriptedIds(random.Random):
    """Hands out the given query IDs first, then random ones."""

    def __init__(self, ids: list[int]) -> None:
        super().__init__(1)
        self.ids = ids

    def getrandbits(self, k: int) -> int:
        return self.ids.pop(0) if self.ids else super().getrandbits(k)


def always(reply: Callable[[dns.message.Message], bytes]) -> Handler:
    return lambda query, _: [(reply(query), 0.0)]


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


# --- timing: retries, late and duplicate answers -----------------------------------


def test_silent_resolver_times_out_each_attempt_after_its_wait(run: Run) -> None:
    arrivals: list[float] = []

    def silent(query: dns.message.Message, nth: int) -> Replies:
        arrivals.append(time.monotonic())
        return []

    async def main() -> None:
        # Waits of 0.1, 0.2 and 0.4 s; the sweep runs every 0.005 s.
        async with client_for(silent, timeout=0.1, backoff=2.0) as (client, _):
            started = time.monotonic()
            answer = await client.query("a.example", RdType.MX)
            ended = time.monotonic()
            assert client.pending == 0
            stats = client.stats
        assert (answer.outcome, answer.attempts, stats.timeouts) == (DnsOutcome.TIMEOUT, 3, 3)
        assert "no answer after 3 attempts (3 timed out)" in answer.error
        gaps = [b - a for a, b in zip([started, *arrivals], [*arrivals, ended], strict=True)]
        # Never early (the loop clock has 1 ms steps); late by a tick and the
        # loop's own latency at most (generous: the machine is shared).
        for gap, wait in zip(gaps[1:], [0.1, 0.2, 0.4], strict=True):
            assert wait - 0.002 <= gap < wait + 0.08

    run(main())


def test_late_answer_to_the_first_attempt_completes_the_query(run: Run) -> None:
    def first_only_and_slowly(query: dns.message.Message, nth: int) -> Replies:
        return [(mx_answer(query), 0.25)] if nth == 1 else []

    async def main() -> None:
        async with client_for(first_only_and_slowly) as (client, fake):
            answer = await client.query("a.example", RdType.MX)
            assert client.pending == 0
        assert (answer.outcome, answer.attempts) == (DnsOutcome.ANSWER, 2)
        assert len(fake.queries) == 2

    run(main())


def test_late_duplicate_after_retry_never_completes_a_newer_query(run: Run) -> None:
    # a.example: attempt 1 (ID 7) is answered late, after attempt 2 (ID 8)
    # has been answered. b.example then reuses ID 7 and is still waiting when
    # the late answer for a.example arrives: that answer must be ignored.
    def handler(query: dns.message.Message, nth: int) -> Replies:
        delay = {1: 0.65, 2: 0.0}.get(nth, 0.3)
        return [(mx_answer(query), delay)]

    async def main() -> None:
        ids = ScriptedIds([7, 8, 7])
        async with client_for(handler, rng=ids, timeout=0.5, sockets=1) as (client, fake):
            first = await client.query("a.example", RdType.MX)
            second = await client.query("b.example", RdType.MX)
            await asyncio.sleep(0.4)  # anything late has arrived by now
            assert client.pending == 0
            stats = client.stats
        assert [q.id for q in fake.queries] == [7, 8, 7]
        assert (first.outcome, first.attempts) == (DnsOutcome.ANSWER, 2)
        assert (second.outcome, second.attempts) == (DnsOutcome.ANSWER, 1)
        assert second.qname == "b.example."
        assert (stats.accepted, stats.ignored) == (2, 1)

    run(main())


def test_two_queries_in_flight_never_share_an_id(run: Run) -> None:
    async def main() -> None:
        slow = lambda query, nth: [(mx_answer(query), 0.05)]  # noqa: E731
        ids = ScriptedIds([7, 7, 9])
        async with client_for(slow, rng=ids, sockets=1) as (client, fake):
            answers = await asyncio.gather(
                client.query("a.example", RdType.MX), client.query("b.example", RdType.MX)
            )
            assert client.pending == 0
        assert sorted(q.id for q in fake.queries) == [7, 9]
        assert [a.outcome for a in answers] == [DnsOutcome.ANSWER] * 2
        assert [a.qname for a in answers] == ["a.example.", "b.example."]

    run(main())


def test_in_flight_queries_are_bounded(run: Run) -> None:
    async def main() -> None:
        slow = lambda query, nth: [(mx_answer(query), 0.02)]  # noqa: E731
        async with client_for(slow, max_in_flight=20, timeout=5.0) as (client, fake):
            answers = await asyncio.gather(
                *(client.query(f"{i}.example", RdType.MX) for i in range(300))
            )
            assert client.pending == 0
        assert {a.outcome for a in answers} == {DnsOutcome.ANSWER}
        assert [a.qname for a in answers] == [f"{i}.example." for i in range(300)]
        assert 1 < fake.most_outstanding <= 20

    run(main())


def test_the_in_flight_limit_can_change_while_queries_wait(run: Run) -> None:
    async def main() -> None:
        slow = lambda query, nth: [(mx_answer(query), 0.1)]  # noqa: E731
        async with client_for(slow, max_in_flight=2, timeout=5.0) as (client, fake):
            futures = [client.ask(f"{i}.example", RdType.MX) for i in range(10)]
            assert (client.in_flight, client.waiting) == (2, 8)
            client.set_max_in_flight(6)  # the waiting ones go out at once
            assert (client.in_flight, client.waiting, client.max_in_flight) == (6, 4, 6)
            client.set_max_in_flight(1)  # those sent stay; no new one until below
            assert (client.in_flight, client.waiting) == (6, 4)
            await asyncio.gather(*futures)
            assert (client.in_flight, client.waiting) == (0, 0)
        assert fake.most_outstanding == 6

    run(main())


def test_latencies_are_handed_over_once(run: Run) -> None:
    def handler(query: dns.message.Message, nth: int) -> Replies:
        silent = str(query.question[0].name).startswith("silent")
        return [] if silent else [(mx_answer(query), 0.05)]

    async def main() -> None:
        async with client_for(handler, timeout=0.1, retries=0) as (client, _):
            answers = await asyncio.gather(
                client.query("a.example", RdType.MX),
                client.query("b.example", RdType.MX),
                client.query("silent.example", RdType.MX),
            )
            latencies, retried, gave_up = client.take_latencies()
            assert client.take_latencies() == ([], 0, 0)
        assert [a.outcome for a in answers][-1] is DnsOutcome.TIMEOUT
        assert (gave_up, retried) == (1, 0)
        assert len(latencies) == 2
        assert all(0.04 < latency < 0.5 for latency in latencies)

    run(main())


def test_asked_queries_are_in_flight_together(run: Run) -> None:
    async def main() -> None:
        slow = lambda query, nth: [(mx_answer(query), 0.05)]  # noqa: E731
        async with client_for(slow) as (client, fake):
            # Both asked before either is awaited: no task, yet concurrent.
            first, second = client.ask("a.example", RdType.MX), client.ask("b.example", RdType.MX)
            assert client.pending == 2
            answers = [await first, await second]
            assert client.pending == 0
        assert [a.qname for a in answers] == ["a.example.", "b.example."]
        assert {a.outcome for a in answers} == {DnsOutcome.ANSWER}
        assert fake.most_outstanding == 2

    run(main())


def test_query_cancelled_while_waiting_for_a_slot_is_never_sent(run: Run) -> None:
    async def main() -> None:
        slow = lambda query, nth: [(mx_answer(query), 0.05)]  # noqa: E731
        async with client_for(slow, max_in_flight=1) as (client, fake):
            first = client.ask("a.example", RdType.MX)
            second = client.ask("b.example", RdType.MX)
            third = client.ask("c.example", RdType.MX)
            assert client.pending == 1  # the others wait for the one slot
            second.cancel()
            assert (await first).outcome is DnsOutcome.ANSWER
            assert (await third).outcome is DnsOutcome.ANSWER
            assert client.pending == 0
        assert [str(q.question[0].name) for q in fake.queries] == ["a.example.", "c.example."]

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
