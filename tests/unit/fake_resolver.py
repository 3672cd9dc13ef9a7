"""A fake DNS resolver in-process on loopback, and the DNS client's test
settings, for the client's unit tests (test_resolve_client*.py)."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any, cast

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rrset
import uvloop

from scanner.resolve.client import DnsClient, ResolverSettings

Replies = list[tuple[bytes, float]]  # datagrams to send back, each after a delay
Handler = Callable[[dns.message.Message, int], Replies]  # (query, n-th query received)
Run = Callable[[Coroutine[Any, Any, None]], None]


def loop_runner(loop: str) -> Run:
    """Runs a test's coroutine on a new ``loop`` ("asyncio" or "uvloop"); an
    exception in any callback of the loop (the client's timers and protocol
    callbacks, which only log it) fails the test."""
    factory = uvloop.new_event_loop if loop == "uvloop" else asyncio.new_event_loop

    def runner(main: Coroutine[Any, Any, None]) -> None:
        errors: list[dict[str, Any]] = []
        with asyncio.Runner(loop_factory=factory) as runner_:
            runner_.get_loop().set_exception_handler(lambda _loop, context: errors.append(context))
            runner_.run(main)
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
