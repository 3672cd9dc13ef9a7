"""What a DNS client is told and what it reports: the resolvers and the
transport's limits (``ResolverSettings``; servers written as in RFC 3986
section 3.2.2, an IPv6 address in brackets when a port follows), and the
counts of what it sent and received (``ClientStats``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from scanner.resolve.message import EDNS_PAYLOAD


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
    # Attempts at 0, 2, 6 and 14 s, given up at 30 s: longer than the managed
    # Unbound takes to give up on a zone with five dead name servers
    # (scanner.resolve.managed), and a last attempt after it has given up on
    # two, which a resolver that drops slow replies then answers from memory.
    timeout: float = 2.0
    retries: int = 3
    backoff: float = 2.0
    # Over TCP the answer is normally in the resolver's cache already; an
    # answer with TTL 0 is fetched again, which the slowest zones take seconds for.
    tcp_timeout: float = 10.0
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
