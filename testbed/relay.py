"""The DNS operators of the internet profile: one asyncio process that answers
on the address of every operator (testbed.profile) as that operator would, by
relaying to the testbed's NSD and holding each answer back for the operator's
round-trip time.

Per operator and per query it decides (``Conduct``, pure, time passed in):
drop it (a dead operator, or loss), answer REFUSED itself (a lame operator),
answer an empty response with TC over UDP (RFC 1035 section 4.2.1, RFC 2181
section 9: the truncating operator always, the rate-limited one above its
rate, as RRL with slip 1 does), or forward it and delay the answer. TCP
(RFC 1035 section 4.2.2, RFC 7766: a two-octet length before each message,
several queries per connection) is served for every operator that answers,
unlimited and with the same delays.

Why our own relay rather than dnsdist (Debian's 1.7.3 has delay, drop and TC
actions): its response delay runs a thread that spins while any answer waits,
about 0.7 of a core whatever the query rate (benchmarks/RESULTS.md), on a
machine whose two cores the scanner and the resolver share.

Run as ``python -m testbed.relay CONFIG.json [--ready-file PATH]``; the
configuration is written by ``write_config``. Counters per operator go to
``stats_file`` every second, for tests and benchmarks.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import math
import os
import random
import socket
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum, auto
from pathlib import Path
from typing import cast

from testbed import daemon
from testbed.procs import TestbedError
from testbed.profile import TAIL_SHAPE, Operator, OperatorKind
from testbed.responder_config import is_loopback

LOG = logging.getLogger("testbed.relay")

CONFIG_VERSION = 1
_HEADER = struct.Struct("!HHHHHH")
_QR, _AA, _TC, _RD_MASK, _OPCODE_MASK = 0x8000, 0x0400, 0x0200, 0x0100, 0x7800
_REFUSED = 5
_STATS_INTERVAL = 1.0
# Upstream IDs are reused round-robin; an entry is overwritten only after
# 65,536 newer queries, long after NSD (microseconds away) has answered.
_IDS = 1 << 16


class Action(Enum):
    FORWARD = auto()
    DROP = auto()
    REFUSE = auto()
    TRUNCATE = auto()


@dataclass(slots=True)
class Counters:
    queries: int = 0
    forwarded: int = 0
    dropped: int = 0
    refused: int = 0
    truncated: int = 0
    tcp_queries: int = 0


@dataclass(slots=True)
class Conduct:
    """One operator's decisions, pure: randomness and time are passed in."""

    operator: Operator
    counters: Counters = field(default_factory=Counters)
    _second: int = -1
    _in_second: int = 0

    def decide(self, *, now: float, tcp: bool, uniform: float) -> Action:
        """What to do with one query arriving at ``now`` (seconds, any monotonic clock)."""
        op = self.operator
        counters = self.counters
        counters.queries += 1
        if tcp:
            counters.tcp_queries += 1
        if op.kind is OperatorKind.DEAD or (not tcp and uniform < op.loss):
            counters.dropped += 1
            return Action.DROP
        if op.kind is OperatorKind.LAME:
            counters.refused += 1
            return Action.REFUSE
        if not tcp and self._truncates(now):
            counters.truncated += 1
            return Action.TRUNCATE
        counters.forwarded += 1
        return Action.FORWARD

    def _truncates(self, now: float) -> bool:
        op = self.operator
        if op.kind is OperatorKind.TRUNCATING:
            return True
        if op.rate_limit is None:
            return False
        # RRL counts per one-second window (BIND's responses-per-second).
        second = int(now)
        if second != self._second:
            self._second, self._in_second = second, 0
        self._in_second += 1
        return self._in_second > op.rate_limit

    def delay(self, gauss: float, uniform: float, pareto: float) -> float:
        """Seconds to hold an answer back, from a standard normal draw, a
        uniform draw in [0, 1) and a Pareto draw (>= 1) of TAIL_SHAPE."""
        op = self.operator
        ms = op.median_ms * math.exp(op.sigma * gauss)
        if uniform < op.tail:
            ms *= pareto
        return min(ms, op.max_ms) / 1000.0


def question_end(message: bytes) -> int | None:
    """Offset just past the question of a one-question query; None if malformed."""
    if len(message) < _HEADER.size:
        return None
    if _HEADER.unpack_from(message)[2] != 1:
        return None
    offset = _HEADER.size
    while offset < len(message):
        length = message[offset]
        if length == 0:
            end = offset + 1 + 4
            return end if end <= len(message) else None
        if length > 63:  # a query's question is never compressed
            return None
        offset += 1 + length
    return None


def synthesise(query: bytes, *, truncated: bool, rcode: int = 0) -> bytes | None:
    """An answer with no records to ``query``: TC set, or the given RCODE."""
    end = question_end(query)
    if end is None:
        return None
    qid, flags = struct.unpack_from("!HH", query)
    reply = _QR | (flags & (_OPCODE_MASK | _RD_MASK)) | rcode
    if truncated:
        reply |= _TC | _AA
    return _HEADER.pack(qid, reply, 1, 0, 0, 0) + query[_HEADER.size : end]


@dataclass(frozen=True, slots=True)
class Route:
    """An operator and the NSD (address, port) that holds its zones."""

    operator: Operator
    upstream: tuple[str, int]


@dataclass(frozen=True, slots=True)
class RelayConfig:
    routes: tuple[Route, ...]
    stats_file: Path | None = None

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for route in self.routes:
            address = route.operator.address
            for label, checked in (("operator", address), ("upstream", route.upstream[0])):
                if not is_loopback(checked):
                    raise TestbedError(f"{label} address {checked} is not a loopback address")
            if address in seen:
                raise TestbedError(f"operator address {address} is listed twice")
            seen.add(address)


def write_config(path: Path, config: RelayConfig) -> None:
    document = {
        "version": CONFIG_VERSION,
        "stats_file": None if config.stats_file is None else str(config.stats_file),
        "routes": [
            {**route.operator.to_json(), "upstream": "{}:{}".format(*route.upstream)}
            for route in config.routes
        ],
    }
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, indent=1))
    os.replace(temporary, path)


def load_config(path: Path) -> RelayConfig:
    try:
        document = json.loads(path.read_text())
        if document.get("version") != CONFIG_VERSION:
            raise TestbedError(f"{path}: unsupported relay config version")
        routes = []
        for item in document["routes"]:
            host, _, port = str(item.pop("upstream")).rpartition(":")
            routes.append(Route(Operator.from_json(item), (host, int(port))))
        stats = document.get("stats_file")
        return RelayConfig(routes=tuple(routes), stats_file=None if stats is None else Path(stats))
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise TestbedError(f"{path}: cannot read relay config: {exc!r}") from exc


# -- the asyncio drivers ----------------------------------------------------------


class _Draws:
    """The random draws of one process (not seeded: delays need no replay)."""

    def __init__(self) -> None:
        self.random = random.Random()

    def delay(self, conduct: Conduct) -> float:
        r = self.random
        return conduct.delay(r.gauss(0.0, 1.0), r.random(), r.paretovariate(TAIL_SHAPE))


class _Upstream(asyncio.DatagramProtocol):
    """A UDP socket to one NSD; answers are matched by the rewritten ID."""

    def __init__(self, relay: Relay) -> None:
        self._relay = relay

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self._relay.on_answer(data)


class _UdpFront(asyncio.DatagramProtocol):
    def __init__(self, relay: Relay, conduct: Conduct, upstream: asyncio.DatagramTransport) -> None:
        self._relay = relay
        self.conduct = conduct
        self.upstream = upstream
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | object, ...]) -> None:
        self._relay.on_query(self, data, addr)

    def error_received(self, exc: Exception) -> None:
        pass  # an ICMP error for an earlier answer: the client is gone


class Relay:
    """Forwards queries to NSD and sends each answer back after its delay."""

    def __init__(self, loop: asyncio.AbstractEventLoop, config: RelayConfig) -> None:
        self._loop = loop
        self._config = config
        self._draws = _Draws()
        self._pending: dict[int, tuple[_UdpFront, bytes, tuple[str | object, ...]]] = {}
        self._next_id = 0
        self.conducts = [Conduct(route.operator) for route in config.routes]

    async def start(self) -> list[asyncio.BaseTransport | asyncio.Server]:
        loop = self._loop
        opened: list[asyncio.BaseTransport | asyncio.Server] = []
        upstreams: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        for route in self._config.routes:
            if route.upstream not in upstreams:
                transport, _ = await loop.create_datagram_endpoint(
                    lambda: _Upstream(self), remote_addr=route.upstream
                )
                upstreams[route.upstream] = transport
                opened.append(transport)
        for conduct, route in zip(self.conducts, self._config.routes, strict=True):
            address = conduct.operator.address
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
                udp.bind((address, 53))
            except OSError as exc:
                udp.close()
                raise OSError(exc.errno, f"cannot bind {address} port 53: {exc.strerror}") from exc
            front, _ = await loop.create_datagram_endpoint(
                functools.partial(_UdpFront, self, conduct, upstreams[route.upstream]), sock=udp
            )
            opened.append(front)
            if conduct.operator.kind is not OperatorKind.DEAD:
                opened.append(
                    await loop.create_server(
                        functools.partial(_TcpFront, self, conduct, route.upstream),
                        host=address,
                        port=53,
                        reuse_address=True,
                    )
                )
        return opened

    def on_query(self, front: _UdpFront, data: bytes, addr: tuple[str | object, ...]) -> None:
        conduct = front.conduct
        uniform = self._draws.random.random()
        action = conduct.decide(now=self._loop.time(), tcp=False, uniform=uniform)
        if action is Action.FORWARD:
            if len(data) < _HEADER.size:
                return
            new_id = self._next_id = (self._next_id + 1) % _IDS
            self._pending[new_id] = (front, data[:2], addr)
            front.upstream.sendto(new_id.to_bytes(2, "big") + data[2:])
        elif action is not Action.DROP:
            reply = synthesise(
                data,
                truncated=action is Action.TRUNCATE,
                rcode=_REFUSED if action is Action.REFUSE else 0,
            )
            if reply is not None and front.transport is not None:
                self._later(conduct, front.transport.sendto, reply, addr)

    def on_answer(self, data: bytes) -> None:
        if len(data) < _HEADER.size:
            return
        entry = self._pending.pop(int.from_bytes(data[:2], "big"), None)
        if entry is None:
            return
        front, original_id, addr = entry
        if front.transport is not None:
            self._later(front.conduct, front.transport.sendto, original_id + data[2:], addr)

    def _later(self, conduct: Conduct, send: Callable[..., object], *args: object) -> None:
        self._loop.call_later(self._draws.delay(conduct), send, *args)

    def tcp_query(self, front: _TcpFront, query: bytes) -> None:
        """One query over TCP: answered (after the delay) through ``front.reply``."""
        action = front.conduct.decide(now=self._loop.time(), tcp=True, uniform=0.0)
        if action is Action.REFUSE:
            answer = synthesise(query, truncated=False, rcode=_REFUSED)
            if answer is not None:
                self._later(front.conduct, front.reply, answer)
            return
        if action is Action.FORWARD:
            self._loop.create_task(self._tcp_forward(front, query))

    async def _tcp_forward(self, front: _TcpFront, query: bytes) -> None:
        host, port = front.upstream
        try:
            reader, writer = await asyncio.open_connection(host, port)
            try:
                writer.write(len(query).to_bytes(2, "big") + query)
                size = int.from_bytes(await reader.readexactly(2), "big")
                answer = await reader.readexactly(size)
            finally:
                writer.close()
        except (OSError, asyncio.IncompleteReadError):
            return  # the client times out, as with a server that failed
        self._later(front.conduct, front.reply, answer)

    def stats(self) -> dict[str, dict[str, int]]:
        return {
            c.operator.address: {
                "queries": c.counters.queries,
                "forwarded": c.counters.forwarded,
                "dropped": c.counters.dropped,
                "refused": c.counters.refused,
                "truncated": c.counters.truncated,
                "tcp_queries": c.counters.tcp_queries,
            }
            for c in self.conducts
        }


class _TcpFront(asyncio.Protocol):
    """DNS over TCP from the resolver: length-prefixed queries, answered as they come."""

    _MAX_BUFFER = 1 << 17

    def __init__(self, relay: Relay, conduct: Conduct, upstream: tuple[str, int]) -> None:
        self._relay = relay
        self.conduct = conduct
        self.upstream = upstream
        self._buffer = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        while len(self._buffer) >= 2:
            size = int.from_bytes(self._buffer[:2], "big")
            if len(self._buffer) < 2 + size:
                break
            query, self._buffer = self._buffer[2 : 2 + size], self._buffer[2 + size :]
            self._relay.tcp_query(self, query)
        if len(self._buffer) > self._MAX_BUFFER and self._transport is not None:
            self._transport.abort()

    def reply(self, answer: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(len(answer).to_bytes(2, "big") + answer)

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None


async def serve(config: RelayConfig, ready_file: Path | None = None) -> dict[str, dict[str, int]]:
    """Serve every operator until SIGTERM or SIGINT; return the counters."""
    loop = asyncio.get_running_loop()
    stop = daemon.stop_event()
    relay = Relay(loop, config)
    opened = await relay.start()
    try:
        daemon.announce_ready(ready_file, {"pid": os.getpid(), "operators": len(config.routes)})
        while not stop.is_set():
            if config.stats_file is not None:
                daemon.write_json(config.stats_file, relay.stats())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), _STATS_INTERVAL)
    finally:
        for item in opened:
            item.close()
        if config.stats_file is not None:
            daemon.write_json(config.stats_file, relay.stats())
    return relay.stats()


def read_stats(path: Path) -> dict[str, dict[str, int]]:
    """The counters a running (or stopped) relay last wrote."""
    document = json.loads(path.read_text())
    return {str(k): {str(n): int(v) for n, v in c.items()} for k, c in document.items()}


def main(argv: Sequence[str] | None = None) -> int:
    return daemon.run(argv, "relay", __doc__, load_config, serve, _report, (TestbedError,))


def _report(totals: dict[str, dict[str, int]]) -> None:
    queries = sum(c["queries"] for c in totals.values())
    LOG.info("stopped after %d queries to %d operators", queries, len(totals))


if __name__ == "__main__":
    sys.exit(main())
