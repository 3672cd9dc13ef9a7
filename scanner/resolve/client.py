"""Asynchronous stub resolver client: UDP with TCP fallback (thin I/O driver).

Transport rules implemented here:

- RFC 1035 section 4.2: UDP first. RFC 7766 section 5: when TC is set,
  repeat the query over TCP (the answer did not fit the 1232-octet EDNS
  payload we offer); the exchange itself is scanner.resolve.tcp.
- RFC 5452 section 3 and RFC 2181 section 4: a reply is accepted only if its
  ID, question (name case-insensitively, type and class) and source match a
  query we sent; connected UDP sockets let the kernel enforce the source, and
  IDs are random and never shared by two queries on one socket. Anything else is
  counted and dropped, so a late, duplicate or spoofed reply never completes
  the wrong query.
- Retransmission with exponential backoff, rotating over the resolvers.

Every query ends in a DnsAnswer (scanner.resolve.answer) whose outcome says
what happened; nothing a resolver does raises out of ``DnsClient.query``.
Encoding, parsing and classification are in the pure codec (message,
dnsname, wire, answer); what the client is told and what it reports are
scanner.resolve.settings; this module only moves bytes and keeps time.
"""

from __future__ import annotations

import asyncio
import collections
import random
import socket
import time
from types import TracebackType
from typing import Any, Final, cast

from scanner import names
from scanner.resolve import tcp
from scanner.resolve.answer import DnsAnswer, answer_from_message, is_transient
from scanner.resolve.dnsname import is_plain_name
from scanner.resolve.message import Malformed, Message
from scanner.resolve.settings import ClientStats, ResolverSettings, parse_server
from scanner.resolve.wire import OPT_RR_SIZE, build_query, parse_message
from scanner.status import DnsOutcome

__all__ = ["ClientStats", "DnsAnswer", "DnsClient", "ResolverSettings", "parse_server"]

_RESPONSES: Final = (DnsOutcome.ANSWER, DnsOutcome.NODATA, DnsOutcome.NXDOMAIN)
# Latencies kept between two reads by the scan's flow control (take_latencies).
_LATENCY_SAMPLES: Final = 65_536


class _Counters:
    __slots__ = ("accepted", "ignored", "refused", "sent", "tcp", "timeouts")

    def __init__(self) -> None:
        self.sent = self.accepted = self.ignored = 0
        self.timeouts = self.refused = self.tcp = 0


class _Query:
    """One query from its first send to its answer, driven by callbacks.

    A query is a small state machine rather than a coroutine: the reply
    callback, the client's sweep of expired attempts or an ICMP error moves
    it on, so asking costs no task and the caller awaits one future (RFC 1035
    section 4.2.1 retransmission, our backoff and resolver rotation in
    ``_attempt``).
    """

    __slots__ = (
        "attempt", "deadline", "first", "future", "held", "name_wire", "qname", "rdtype",
        "refused", "refused_why", "slot", "socket", "started", "template", "timeouts",
        "type_class", "wait",
    )  # fmt: skip

    def __init__(
        self,
        qname: str,
        rdtype: int,
        template: bytes,
        future: asyncio.Future[DnsAnswer],
        wait: float,
    ) -> None:
        self.qname, self.rdtype, self.template = qname, rdtype, template
        # None once the answer is set: the sweep's FIFOs hold a finished
        # query until its deadline, and should not hold its answer too.
        self.future: asyncio.Future[DnsAnswer] | None = future
        question = template[12:-OPT_RR_SIZE]
        self.name_wire = question[:-4].lower()
        self.type_class = question[-4:]
        self.wait = wait
        self.started = 0.0
        self.slot = False  # holds one of the client's max_in_flight slots
        self.first = 0  # index of the first resolver tried
        self.attempt = self.timeouts = self.refused = 0
        self.refused_why = ""  # why the last attempt's socket failed
        # Every attempt's (socket, ID) stays registered until the query ends:
        # a slow answer to the first attempt is as good as one to the last.
        self.held: list[tuple[_UdpSocket, int]] = []
        self.socket: _UdpSocket | None = None  # of the current attempt, then of the reply
        # When the current attempt times out (loop time); 0.0 when no attempt
        # is waiting (answered, refused, gone to TCP, or not sent yet).
        self.deadline = 0.0

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

    def parse(self, data: bytes) -> Message | Malformed:
        return parse_message(data, known_name=self.qname if is_plain_name(self.qname) else None)


class _UdpSocket(asyncio.DatagramProtocol):
    """One connected UDP socket to one resolver, with its pending IDs."""

    def __init__(self, server: str, client: DnsClient) -> None:
        self.server = server
        self.pending: dict[int, _Query] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._client = client

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The stock loop's UDP transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        query = self.pending.get(int.from_bytes(data[:2], "big")) if len(data) >= 12 else None
        if query is None or not query.matches(data):
            self._client._counters.ignored += 1
            return
        self._client._reply(query, self, data)

    def error_received(self, exc: Exception) -> None:
        # On a connected socket an ICMP error (port unreachable: nothing
        # listens) cannot be tied to one datagram, but all of this socket's
        # traffic goes to the one resolver: end every attempt waiting on it.
        # A query is here once per attempt sent on this socket; only its
        # current attempt (the one with a deadline) is ended.
        for query in list(self.pending.values()):
            if query.socket is self and query.deadline:
                self._client._refused(query, f"{self.server}: {exc}")

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
    "example.com", RdType.MX)``; ``ask`` starts a query and returns its
    future, for concurrent queries without a task each. At most
    ``max_in_flight`` are outstanding, the rest wait their turn in order.
    ``rng`` chooses query IDs; pass a seeded one to make tests repeatable.
    """

    def __init__(self, settings: ResolverSettings, *, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng if rng is not None else random.Random()
        self._counters = _Counters()
        self._servers: list[list[_UdpSocket]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._active = 0  # queries sent and not finished
        self._waiting: collections.deque[_Query] = collections.deque()
        self._tcp: set[asyncio.Task[None]] = set()
        # Attempts waiting for a reply, one FIFO per wait (the first timeout,
        # then each backoff): appended as sent, so each is in deadline order
        # and one periodic sweep finds the expired ones at its head. A timer
        # per attempt cost more than the rest of sending it (about 3.4 us to
        # start and cancel in uvloop). Entries of attempts that ended are
        # left to expire: (deadline, query) is live while the query still
        # has that deadline.
        self._expiries: dict[float, collections.deque[tuple[float, _Query]]] = {}
        self._sweeper: asyncio.TimerHandle | None = None
        # A timeout fires at most this late: a twentieth of the first wait,
        # and no finer than uvloop's clock (1 ms), so a tiny timeout never
        # makes the sweep spin.
        self._tick = max(settings.timeout / 20, 0.001)
        self._turn = 0
        self._spin = 0
        self._closing = False
        self._limit = settings.max_in_flight
        # What the scan's flow control reads (take_latencies): the latency of
        # every answered query, how many needed more than one attempt, and
        # how many were given up on, since last read.
        self._latencies: list[float] = []
        self._retried = 0
        self._gave_up = 0
        # What the resolver's watchdog reads (take_health): answers that show
        # a working resolver, and answers and attempts that show nothing or
        # a failure of its own, since last read.
        self._healthy = 0
        self._unhealthy = 0

    async def start(self) -> None:
        """Open ``sockets`` UDP sockets per resolver."""
        if self._loop is not None:
            raise RuntimeError("DnsClient already started")
        self._loop = asyncio.get_running_loop()
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
                lambda: _UdpSocket(label, self), sock=sock
            )
        except BaseException:
            sock.close()
            raise
        return protocol

    async def close(self) -> None:
        """End every query (TIMEOUT, "client closed"), close the sockets."""
        self._closing = True
        while self._waiting:
            self._no_answer(self._waiting.popleft(), closed=True)
        sockets = self._sockets()
        for query in self._pending_queries():
            self._no_answer(query, closed=True)  # frees its IDs
        for udp in sockets:
            if udp.transport is not None:
                udp.transport.close()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        self._expiries.clear()
        for task in list(self._tcp):
            task.cancel()
        await asyncio.gather(*(udp.lost for udp in sockets), *self._tcp, return_exceptions=True)
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
        return sum(len(udp.pending) for udp in self._sockets())

    def _sockets(self) -> list[_UdpSocket]:
        return [udp for group in self._servers for udp in group]

    def _pending_queries(self) -> list[_Query]:
        """Every query with an ID registered, once (a query is pending on
        every socket one of its attempts used)."""
        return list(dict.fromkeys(q for udp in self._sockets() for q in udp.pending.values()))

    @property
    def in_flight(self) -> int:
        """Queries sent and not finished."""
        return self._active

    @property
    def waiting(self) -> int:
        """Queries asked and not yet sent: the in-flight limit holds them back."""
        return len(self._waiting)

    @property
    def max_in_flight(self) -> int:
        return self._limit

    def set_max_in_flight(self, limit: int) -> None:
        """Change how many queries may be outstanding at once (the scan's flow
        control follows the resolver); queries waiting go out at once if it grew."""
        ceiling = 30_000 // (self.settings.retries + 1)  # see ResolverSettings
        self._limit = max(1, min(limit, ceiling))
        self._admit_waiting()

    def take_latencies(self) -> tuple[list[float], int, int]:
        """Since the last call: the seconds each answered query took, how many
        of those needed more than one attempt, and how many queries were
        given up on (TIMEOUT); all reset. A resolver that drops questions
        (overloaded, or over a per-client limit) shows in the middle figure
        long before in the last."""
        taken = self._latencies, self._retried, self._gave_up
        self._latencies, self._retried, self._gave_up = [], 0, 0
        return taken

    def take_health(self) -> tuple[int, int]:
        """Since the last call: answers that show the resolver at work (data,
        NODATA, NXDOMAIN, a validation failure), and attempts that timed out
        or were refused plus answers that were a failure of the resolver's
        own (a SERVFAIL without a validation EDE, REFUSED); both reset."""
        taken = self._healthy, self._unhealthy
        self._healthy = self._unhealthy = 0
        return taken

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
        future = self.ask(name, rdtype)
        try:
            return await future
        except asyncio.CancelledError:
            self._drop_abandoned()  # at once, not at the next sweep
            raise

    def ask(self, name: str, rdtype: int) -> asyncio.Future[DnsAnswer]:
        """``query`` without the coroutine: the query is on its way when this
        returns, so ask several, then await them (no task per query).
        Cancelling the future abandons the query: its IDs and in-flight slot
        are freed by the next sweep, within a tick (a twentieth of the
        timeout; after a TC reply, when the TCP retry ends). A done-callback
        per future would free them at once but cost about 3 us per query,
        most of what sending it costs."""
        loop = self._loop
        if loop is None or self._closing:
            raise RuntimeError("DnsClient is not running: use it as an async context manager")
        qname, rdtype = names.absolute(name), int(rdtype)  # a plain int, even for an RdType
        future: asyncio.Future[DnsAnswer] = loop.create_future()
        try:
            template = build_query(0, qname, rdtype, payload=self.settings.payload)
        except ValueError as exc:
            error = f"cannot query: {exc}"
            future.set_result(DnsAnswer(qname, rdtype, DnsOutcome.MALFORMED, error=error))
            return future
        query = _Query(qname, rdtype, template, future, self.settings.timeout)
        if self._active < self._limit:
            self._begin(query)
        else:
            self._waiting.append(query)
        return future

    # -- the state machine -------------------------------------------------------

    def _begin(self, query: _Query) -> None:
        self._active += 1
        query.slot = True
        # Not loop.time(): uvloop's has millisecond steps, and a loopback
        # resolver answers well within one.
        query.started = time.monotonic()
        query.first = self._turn
        self._turn += 1
        self._attempt(query)

    def _attempt(self, query: _Query) -> None:
        """Send attempt number ``query.attempt + 1``, to the next resolver."""
        assert self._loop is not None
        group = self._servers[(query.first + query.attempt) % len(self._servers)]
        udp = group[self._spin % len(group)]
        self._spin += 1
        query.attempt += 1
        qid = udp.register(query, self._rng)
        query.held.append((udp, qid))
        query.socket = udp
        query.deadline = deadline = self._loop.time() + query.wait
        expiries = self._expiries.get(query.wait)
        if expiries is None:
            expiries = self._expiries[query.wait] = collections.deque()
        expiries.append((deadline, query))
        if self._sweeper is None:
            self._sweeper = self._loop.call_later(self._tick, self._sweep)
        self._counters.sent += 1
        assert udp.transport is not None
        # Last: the transport may report an error (error_received) before
        # sendto returns, which moves the query on from inside this call.
        udp.transport.sendto(qid.to_bytes(2, "big") + query.template[2:])

    def _sweep(self) -> None:
        """Time out the attempts whose deadline has passed and free those
        whose futures were cancelled; again in a tick."""
        assert self._loop is not None
        self._sweeper = None
        self._drop_abandoned()
        now = self._loop.time()
        # A list: an attempt that expires may start a retry with a new wait.
        for expiries in list(self._expiries.values()):
            while expiries and expiries[0][0] <= now:
                deadline, query = expiries.popleft()
                if query.deadline == deadline:
                    self._expired(query)
        self._rearm()

    def _rearm(self) -> None:
        # A method of its own: in _sweep, mypy (and so mypyc) would take
        # self._sweeper to be still None, though a retry sent from there sets it.
        if self._sweeper is None and any(self._expiries.values()):
            assert self._loop is not None
            self._sweeper = self._loop.call_later(self._tick, self._sweep)

    def _expired(self, query: _Query) -> None:
        query.deadline = 0.0
        query.timeouts += 1
        self._counters.timeouts += 1
        self._unhealthy += 1
        query.wait *= self.settings.backoff
        self._next_or_give_up(query)

    def _refused(self, query: _Query, why: str) -> None:
        query.deadline = 0.0
        query.refused += 1
        query.refused_why = why
        self._counters.refused += 1
        self._unhealthy += 1
        self._next_or_give_up(query)

    def _next_or_give_up(self, query: _Query) -> None:
        if query.attempt <= self.settings.retries:
            self._attempt(query)
        else:
            self._no_answer(query, closed=False)

    def _reply(self, query: _Query, udp: _UdpSocket, data: bytes) -> None:
        """A datagram that matches ``query`` (any of its attempts)."""
        self._counters.accepted += 1
        assert self._loop is not None
        elapsed = time.monotonic() - query.started
        message = query.parse(data)
        if isinstance(message, Message) and message.tc:
            self._release_ids(query)  # the slot stays taken until TCP is done
            task = self._loop.create_task(self._retry_over_tcp(query, udp.server))
            self._tcp.add(task)
            task.add_done_callback(self._tcp.discard)
            return
        answer = _conclude(message, query, udp.server, False, elapsed)
        self._finish(query, answer)

    def _no_answer(self, query: _Query, *, closed: bool) -> None:
        server = query.socket.server if query.socket else ""
        timeouts, refused, attempts = query.timeouts, query.refused, query.attempt
        if closed:
            error = "client closed before an answer came"
        elif timeouts:
            error = f"no answer after {attempts} attempts ({timeouts} timed out"
            error += f", {refused} refused)" if refused else ")"
        else:
            error = f"{attempts} attempts refused, last {query.refused_why}"
        # Nothing listening (ICMP port unreachable) on every attempt is a
        # refusal, told apart from an RCODE REFUSED by rcode being None.
        outcome = DnsOutcome.TIMEOUT
        if refused and not timeouts and not closed:
            outcome = DnsOutcome.REFUSED
        elapsed = 0.0
        if query.started:
            elapsed = time.monotonic() - query.started
        answer = DnsAnswer(
            query.qname, query.rdtype, outcome, error=error, server=server,
            attempts=attempts, elapsed=elapsed,
        )  # fmt: skip
        self._finish(query, answer)

    def _release_ids(self, query: _Query) -> None:
        """Stop listening for UDP replies to ``query``."""
        query.deadline = 0.0
        for udp, qid in query.held:
            udp.release(qid, query)
        query.held.clear()

    def _release(self, query: _Query) -> None:
        """Free the query's IDs, deadline and in-flight slot (idempotent)."""
        self._release_ids(query)
        if query.slot:
            query.slot = False
            self._active -= 1
            self._admit_waiting()

    def _finish(self, query: _Query, answer: DnsAnswer) -> None:
        self._release(query)
        outcome = answer.outcome
        if outcome in _RESPONSES or (
            outcome is DnsOutcome.SERVFAIL and not is_transient(outcome, answer.ede_code)
        ):
            self._healthy += 1
        elif answer.rcode is not None and outcome is not DnsOutcome.MALFORMED:
            self._unhealthy += 1  # SERVFAIL or REFUSED said by the resolver itself
        if outcome is DnsOutcome.TIMEOUT:
            self._gave_up += 1
        else:
            if answer.attempts > 1:
                self._retried += 1
            if len(self._latencies) < _LATENCY_SAMPLES:  # bounded if nobody reads them
                self._latencies.append(answer.elapsed)
        future, query.future = query.future, None
        if future is not None and not future.done():
            future.set_result(answer)

    def _drop_abandoned(self) -> None:
        """Free every sent query whose future was cancelled (its caller left).

        Walks the pending IDs: about a thousand entries at most, a tick
        apart. Queries still waiting for a slot are skipped when admitted;
        one gone to TCP keeps its slot until that exchange ends."""
        for query in self._pending_queries():
            if query.future is not None and query.future.cancelled():
                query.future = None
                self._release(query)

    def _admit_waiting(self) -> None:
        while self._waiting and self._active < self._limit:
            query = self._waiting.popleft()
            if query.future is not None and not query.future.done():  # not cancelled
                self._begin(query)

    async def _retry_over_tcp(self, query: _Query, server: str) -> None:
        """RFC 7766 section 5: the UDP reply had TC set; ask again over TCP."""
        self._counters.tcp += 1
        host, port = parse_server(server)
        qid = self._rng.getrandbits(16)
        message = qid.to_bytes(2, "big") + query.template[2:]
        answer: DnsAnswer | None = None
        try:
            async with asyncio.timeout(self.settings.tcp_timeout):
                data = await tcp.exchange(host, port, message)
        except (OSError, asyncio.IncompleteReadError) as exc:  # TimeoutError is an OSError
            reason = f"timed out after {self.settings.tcp_timeout} s"
            error = reason if isinstance(exc, TimeoutError) else repr(exc)
        except asyncio.CancelledError:  # the client is closing
            self._no_answer(query, closed=True)
            raise
        else:
            if int.from_bytes(data[:2], "big") == qid and query.matches(data):
                elapsed = time.monotonic() - query.started
                answer = _conclude(query.parse(data), query, server, True, elapsed)
            error = "the reply does not match the query"
        if answer is None:
            answer = DnsAnswer(
                query.qname,
                query.rdtype,
                DnsOutcome.TRUNCATED,
                error=f"TC over UDP, then TCP {server}: {error}",
                server=server,
                tcp=True,
                attempts=query.attempt,
                elapsed=time.monotonic() - query.started,
            )
        self._finish(query, answer)


def _conclude(
    parsed: Message | Malformed, query: _Query, server: str, tcp: bool, elapsed: float
) -> DnsAnswer:
    """The answer a reply that matched our query makes, even a broken one."""
    qname, rdtype, attempts = query.qname, query.rdtype, query.attempt
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
