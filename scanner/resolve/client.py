"""Asynchronous stub resolver client: UDP with TCP fallback (thin I/O driver).

Transport rules implemented here:

- RFC 1035 section 4.2: UDP first; over TCP each message carries a two-octet
  length prefix. RFC 7766 section 5: when TC is set, repeat the query over
  TCP (the answer did not fit the 1232-octet EDNS payload we offer).
- RFC 5452 section 3 and RFC 2181 section 4: a reply is accepted only if its
  ID, question (name case-insensitively, type and class) and source match a
  query we sent; connected UDP sockets let the kernel enforce the source, and
  IDs are random and never shared by two queries on one socket. Anything else is
  counted and dropped, so a late, duplicate or spoofed reply never completes
  the wrong query.
- Retransmission with exponential backoff, rotating over the resolvers.

Every query ends in a DnsAnswer (scanner.resolve.wire) whose outcome says
what happened; nothing a resolver does raises out of ``DnsClient.query``.
Encoding, parsing and classification are in the pure module wire.py; this
module only moves bytes and keeps time.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import random
import socket
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

from scanner.resolve.wire import (
    EDNS_PAYLOAD,
    OPT_RR_SIZE,
    DnsAnswer,
    Malformed,
    Message,
    answer_from_message,
    build_query,
    normalize_name,
    parse_message,
)
from scanner.status import DnsOutcome

__all__ = ["ClientStats", "DnsAnswer", "DnsClient", "ResolverSettings", "parse_server"]


def parse_server(text: str) -> tuple[str, int]:
    """Split "IP", "IP:PORT", "IPv6" or "[IPv6]:PORT" into (address, port)."""
    host, port = text, 53
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"bad resolver address {text!r}")
        if rest:
            port = int(rest[1:])
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = int(port_text)
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"resolver {text!r} is not an IP address (no names: no bootstrap)"
        ) from None
    if not 0 < port < 65536:
        raise ValueError(f"resolver port {port} out of range in {text!r}")
    return str(address), port


@dataclass(frozen=True, slots=True)
class ResolverSettings:
    """How the client talks to its resolvers; part of the scan's config.

    ``timeout`` is the first UDP attempt's wait; each retry waits ``backoff``
    times longer and goes to the next resolver. ``sockets`` UDP sockets per
    resolver spread the load over source ports. ``receive_buffer``: at 1,000
    queries in flight a 212 KB buffer dropped answers, 4 MB dropped none.
    Unbound with a cold cache keeps up with about 200 outstanding queries.
    """

    servers: tuple[str, ...] = ("127.0.0.1",)
    timeout: float = 2.0
    retries: int = 2
    backoff: float = 2.0
    tcp_timeout: float = 5.0
    max_in_flight: int = 200
    sockets: int = 4
    receive_buffer: int = 4 * 1024 * 1024
    payload: int = EDNS_PAYLOAD

    def __post_init__(self) -> None:
        if not self.servers:
            raise ValueError("at least one resolver is needed")
        for server in self.servers:
            parse_server(server)
        if self.timeout <= 0 or self.tcp_timeout <= 0 or self.backoff < 1:
            raise ValueError("timeouts must be positive and backoff at least 1")
        if self.retries < 0 or self.max_in_flight < 1 or self.sockets < 1:
            raise ValueError("retries must be >= 0, max_in_flight and sockets >= 1")
        # Every attempt holds an ID until its query ends; keep them well
        # inside the 16-bit ID space of a single socket.
        if self.max_in_flight * (self.retries + 1) > 30_000:
            raise ValueError("max_in_flight * (retries + 1) must not exceed 30,000")
        if not 512 <= self.payload <= 65535:
            raise ValueError(f"EDNS payload {self.payload} outside 512-65535")

    @property
    def addresses(self) -> tuple[tuple[str, int], ...]:
        return tuple(parse_server(server) for server in self.servers)


@dataclass(frozen=True, slots=True)
class ClientStats:
    """Counters since the client started (a snapshot)."""

    sent: int = 0  # UDP datagrams sent
    accepted: int = 0  # replies that matched a pending query
    ignored: int = 0  # replies that matched nothing: late, duplicate, spoofed, garbage
    timeouts: int = 0  # UDP attempts that timed out
    refused: int = 0  # UDP attempts ended by an ICMP error (nothing listening)
    tcp: int = 0  # TCP retries after TC


class _Counters:
    __slots__ = ("accepted", "ignored", "refused", "sent", "tcp", "timeouts")

    def __init__(self) -> None:
        self.sent = self.accepted = self.ignored = 0
        self.timeouts = self.refused = self.tcp = 0


class _Query:
    """One query in flight: what a reply must match and what came back."""

    __slots__ = ("closed", "name_wire", "refused", "reply", "socket", "type_class", "waiter")

    def __init__(self, question: bytes) -> None:
        self.name_wire = question[:-4].lower()
        self.type_class = question[-4:]
        self.reply: bytes | None = None  # the first matching reply wins
        self.refused = ""  # why the current attempt's socket failed
        self.closed = False
        # The socket of the current attempt; once a reply came, the socket
        # (so the resolver) it came from.
        self.socket: _UdpSocket | None = None
        self.waiter: asyncio.Future[None] | None = None  # woken by reply, timer, error

    def matches(self, data: bytes) -> bool:
        """QR set, one question, and it is ours (RFC 5452 section 3)."""
        end = 12 + len(self.name_wire)
        return (
            len(data) >= end + 4
            and data[2] & 0x80 != 0
            and data[4:6] == b"\x00\x01"
            and data[12:end].lower() == self.name_wire
            and data[end : end + 4] == self.type_class
        )

    def wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class _UdpSocket(asyncio.DatagramProtocol):
    """One connected UDP socket to one resolver, with its pending IDs."""

    def __init__(self, server: str, counters: _Counters) -> None:
        self.server = server
        self.pending: dict[int, _Query] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._counters = counters

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The stock loop's UDP transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = self.pending.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
        if query is None or not query.matches(data):
            self._counters.ignored += 1
            return
        self._counters.accepted += 1
        if query.reply is None:
            query.reply = data
            query.socket = self
        query.wake()

    def error_received(self, exc: Exception) -> None:
        # On a connected socket an ICMP error (port unreachable: nothing
        # listens) cannot be tied to one datagram, but all of this socket's
        # traffic goes to the one resolver: end every attempt waiting on it.
        for query in self.pending.values():
            if query.socket is self and query.reply is None:
                query.refused = f"{self.server}: {exc}"
                query.wake()

    def register(self, query: _Query, rng: random.Random) -> int:
        """A random ID not in use on this socket."""
        while True:
            qid = rng.getrandbits(16)
            if qid not in self.pending:
                self.pending[qid] = query
                return qid

    def release(self, qid: int, query: _Query) -> None:
        # The ID may already belong to a newer query: remove only our own.
        if self.pending.get(qid) is query:
            del self.pending[qid]


class DnsClient:
    """Sends queries to validating resolvers; one DnsAnswer per query.

    Use as ``async with DnsClient(settings) as client: await client.query(
    "example.com", RdType.MX)``; run many queries concurrently with
    asyncio.gather or a TaskGroup: at most ``max_in_flight`` are outstanding.
    ``rng`` chooses query IDs; pass a seeded one to make tests repeatable.
    """

    def __init__(self, settings: ResolverSettings, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng if rng is not None else random.Random()
        self._counters = _Counters()
        self._servers: list[list[_UdpSocket]] = []
        self._slots: asyncio.Semaphore | None = None
        self._turn = 0
        self._spin = 0
        self._closing = False

    async def start(self) -> None:
        """Open ``sockets`` UDP sockets per resolver."""
        if self._slots is not None:
            raise RuntimeError("DnsClient already started")
        self._slots = asyncio.Semaphore(self.settings.max_in_flight)
        try:
            for host, port in self.settings.addresses:
                group: list[_UdpSocket] = []
                self._servers.append(group)
                for _ in range(self.settings.sockets):
                    group.append(await self._open_socket(host, port))
        except BaseException:
            await self.close()
            raise

    async def _open_socket(self, host: str, port: int) -> _UdpSocket:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        label = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
        sock = socket.socket(family, socket.SOCK_DGRAM)
        try:
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.settings.receive_buffer)
            # Connected: the kernel drops datagrams from any other source and
            # reports ICMP errors, so a resolver that is down fails fast.
            sock.connect((host, port))
            _, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
                lambda: _UdpSocket(label, self._counters), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        return protocol

    async def close(self) -> None:
        """End every pending query (TIMEOUT, "client closed"), close sockets."""
        self._closing = True
        sockets = [udp for group in self._servers for udp in group]
        for udp in sockets:
            for query in udp.pending.values():
                query.closed = True
                query.wake()
            udp.pending.clear()
            if udp.transport is not None:
                udp.transport.close()
        await asyncio.gather(*(udp.lost for udp in sockets))
        self._servers.clear()

    async def __aenter__(self) -> DnsClient:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def pending(self) -> int:
        """IDs registered and not yet released (0 when nothing is in flight)."""
        return sum(len(udp.pending) for group in self._servers for udp in group)

    @property
    def stats(self) -> ClientStats:
        c = self._counters
        return ClientStats(c.sent, c.accepted, c.ignored, c.timeouts, c.refused, c.tcp)

    async def query(self, name: str, rdtype: int) -> DnsAnswer:
        """Resolve (name, rdtype, IN) with RD, AD and DO set.

        A name that cannot be encoded (an empty or over-long label, over 255
        octets, non-ASCII) gives MALFORMED without sending anything: such
        names come from remote data, e.g. a very long MX host name.
        """
        if self._slots is None or self._closing:
            raise RuntimeError("DnsClient is not running: use it as an async context manager")
        qname, rdtype = normalize_name(name), int(rdtype)  # a plain int, even for an RdType
        try:
            template = build_query(0, qname, rdtype, payload=self.settings.payload)
        except ValueError as exc:
            return DnsAnswer(qname, rdtype, DnsOutcome.MALFORMED, error=f"cannot query: {exc}")
        async with self._slots:
            return await self._resolve(qname, rdtype, template)

    async def _resolve(self, qname: str, rdtype: int, template: bytes) -> DnsAnswer:
        loop = asyncio.get_running_loop()
        started = loop.time()
        settings = self.settings
        query = _Query(template[12:-OPT_RR_SIZE])
        first = self._turn
        self._turn += 1
        wait = settings.timeout
        timeouts = refused = attempt = 0
        held: list[tuple[_UdpSocket, int]] = []
        try:
            # Earlier attempts keep their IDs registered until the end: a
            # slow answer to the first attempt is as good as one to the last.
            for attempt in range(1, settings.retries + 2):
                group = self._servers[(first + attempt - 1) % len(self._servers)]
                udp = group[self._spin % len(group)]
                self._spin += 1
                qid = udp.register(query, self._rng)
                held.append((udp, qid))
                query.socket, query.refused = udp, ""
                query.waiter = loop.create_future()
                assert udp.transport is not None
                udp.transport.sendto(qid.to_bytes(2, "big") + template[2:])
                self._counters.sent += 1
                timer = loop.call_later(wait, query.wake)
                try:
                    await query.waiter
                finally:
                    timer.cancel()
                if query.reply is not None or query.closed:
                    break
                if query.refused:
                    refused += 1
                    self._counters.refused += 1
                else:
                    timeouts += 1
                    self._counters.timeouts += 1
                    wait *= settings.backoff
        finally:
            for udp, qid in held:
                udp.release(qid, query)
        elapsed = loop.time() - started
        if query.reply is None or query.socket is None:
            return self._no_answer(qname, rdtype, query, attempt, timeouts, refused, elapsed)
        server = query.socket.server
        message = parse_message(query.reply)
        if isinstance(message, Message) and message.tc:
            return await self._retry_over_tcp(
                qname, rdtype, template, query, server, attempt, started
            )
        return _conclude(message, qname, rdtype, server, False, attempt, elapsed)

    def _no_answer(
        self,
        qname: str,
        rdtype: int,
        query: _Query,
        attempts: int,
        timeouts: int,
        refused: int,
        elapsed: float,
    ) -> DnsAnswer:
        server = query.socket.server if query.socket else ""
        if query.closed:
            error = "client closed before an answer came"
        elif timeouts:
            error = f"no answer after {attempts} attempts ({timeouts} timed out"
            error += f", {refused} refused)" if refused else ")"
        else:
            error = f"{attempts} attempts refused, last {query.refused}"
        # Nothing listening (ICMP port unreachable) on every attempt is a
        # refusal, told apart from an RCODE REFUSED by rcode being None.
        outcome = DnsOutcome.REFUSED if refused and not timeouts else DnsOutcome.TIMEOUT
        return DnsAnswer(
            qname, rdtype, outcome, error=error, server=server, attempts=attempts, elapsed=elapsed
        )

    async def _retry_over_tcp(
        self,
        qname: str,
        rdtype: int,
        template: bytes,
        query: _Query,
        server: str,
        attempts: int,
        started: float,
    ) -> DnsAnswer:
        loop = asyncio.get_running_loop()
        self._counters.tcp += 1
        host, port = parse_server(server)
        qid = self._rng.getrandbits(16)
        message = qid.to_bytes(2, "big") + template[2:]
        try:
            async with asyncio.timeout(self.settings.tcp_timeout):
                reader, writer = await asyncio.open_connection(host, port)
                try:
                    writer.write(len(message).to_bytes(2, "big") + message)
                    size = int.from_bytes(await reader.readexactly(2), "big")
                    data = await reader.readexactly(size)
                finally:
                    writer.close()
                    with contextlib.suppress(OSError):
                        await writer.wait_closed()
        except (OSError, asyncio.IncompleteReadError) as exc:  # TimeoutError is an OSError
            reason = f"timed out after {self.settings.tcp_timeout} s"
            error = reason if isinstance(exc, TimeoutError) else repr(exc)
        else:
            if int.from_bytes(data[:2], "big") == qid and query.matches(data):
                elapsed = loop.time() - started
                parsed = parse_message(data)
                return _conclude(parsed, qname, rdtype, server, True, attempts, elapsed)
            error = "the reply does not match the query"
        return DnsAnswer(
            qname,
            rdtype,
            DnsOutcome.TRUNCATED,
            error=f"TC over UDP, then TCP {server}: {error}",
            server=server,
            tcp=True,
            attempts=attempts,
            elapsed=loop.time() - started,
        )


def _conclude(
    parsed: Message | Malformed,
    qname: str,
    rdtype: int,
    server: str,
    tcp: bool,
    attempts: int,
    elapsed: float,
) -> DnsAnswer:
    """The answer a reply that matched our query makes, even a broken one."""
    if isinstance(parsed, Malformed):
        return DnsAnswer(
            qname,
            rdtype,
            DnsOutcome.MALFORMED,
            error=parsed.error,
            server=server,
            tcp=tcp,
            attempts=attempts,
            elapsed=elapsed,
        )
    # The question matched ours byte for byte (case aside), so its name is
    # ours in the canonical text form that record owners are compared in.
    canonical = parsed.question.name if parsed.question else qname
    return answer_from_message(
        parsed, canonical, rdtype, server=server, tcp=tcp, attempts=attempts, elapsed=elapsed
    )
