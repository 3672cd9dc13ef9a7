"""``bench_resolve.py --breakdown``: where the scanner's CPU goes, per domain
and per query, on a warm Unbound, in alternating rounds: the codec alone
(building queries, reading replies, RFC 1035 section 4 and RFC 7672's
answers), DnsClient alone (a replay of the recorded queries), the Discoverer
over an in-memory client (and the bare loop trips that client costs), and
the whole scanner.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import time
from collections.abc import Callable, Sequence

from resolve_pass import Bed, ScanTally, run_loop, scanner_pass, scanner_settings

from scanner import names
from scanner.resolve.answer import answer_from_message
from scanner.resolve.client import ClientStats, DnsAnswer, DnsClient, ResolverSettings
from scanner.resolve.discover import Asker, Discoverer
from scanner.resolve.message import Message
from scanner.resolve.wire import build_query, parse_message


class RecordingClient:
    """Asks through a DnsClient and keeps every answer in ``answers``, for
    the in-memory replay."""

    def __init__(self, client: DnsClient, answers: dict[tuple[str, int], DnsAnswer]) -> None:
        self._client = client
        self.answers = answers

    def ask(self, name: str, rdtype: int) -> asyncio.Future[DnsAnswer]:
        future = self._client.ask(name, rdtype)
        key = names.absolute(name), int(rdtype)
        future.add_done_callback(lambda done: self.answers.__setitem__(key, done.result()))
        return future


class MemoryClient:
    """Answers from memory after one trip round the event loop, as a reply
    would arrive: what the Discoverer costs without transport and codec."""

    def __init__(self, answers: dict[tuple[str, int], DnsAnswer]) -> None:
        self._answers = answers

    def ask(self, name: str, rdtype: int) -> asyncio.Future[DnsAnswer]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[DnsAnswer] = loop.create_future()
        loop.call_soon(future.set_result, self._answers[names.absolute(name), int(rdtype)])
        return future


def fetch_replies(resolver: str, asked: Sequence[tuple[str, int]]) -> list[bytes]:
    """The raw reply to every query, one at a time over a blocking socket."""
    address, port = resolver.rsplit(":", 1)
    replies = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5.0)
        sock.connect((address, int(port)))
        for qid, (name, rdtype) in enumerate(asked):
            sock.send(build_query(qid & 0xFFFF, name, rdtype))
            replies.append(sock.recv(65535))
    return replies


def codec_pass(asked: Sequence[tuple[str, int]], replies: Sequence[bytes]) -> None:
    """Build every query and read every reply, as the client does."""
    for (name, rdtype), reply in zip(asked, replies, strict=True):
        build_query(0, names.absolute(name), rdtype)
        message = parse_message(reply)
        if isinstance(message, Message):
            answer_from_message(message, name, rdtype)


async def replay(asked: Sequence[tuple[str, int]], settings: ResolverSettings) -> int:
    """Every query through DnsClient alone, ``max_in_flight`` at a time."""
    async with DnsClient(settings) as client:
        queries = iter(asked)

        async def worker() -> None:
            for name, rdtype in queries:
                await client.query(name, rdtype)

        await asyncio.gather(*(worker() for _ in range(settings.max_in_flight)))
        return client.stats.sent


async def discover_from(client: Asker, domains: Sequence[str], concurrency: int) -> None:
    discoverer = Discoverer(client, policies=False)  # the DANE lookups, as resolve_pass
    names = iter(domains)

    async def worker() -> None:
        for name in names:
            await discoverer.domain(name)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def loop_trips(count: int, concurrency: int) -> None:
    """``count`` bare trips round the loop: what MemoryClient itself costs."""
    trips = iter(range(count))

    async def worker() -> None:
        for _ in trips:
            await asyncio.sleep(0)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


def cpu_of(action: Callable[[], object]) -> float:
    started = time.process_time()
    action()
    return time.process_time() - started


def breakdown(args: argparse.Namespace, bed: Bed, domains: list[str]) -> None:
    """CPU per domain of each layer, on a warm Unbound, in alternating rounds."""
    settings = scanner_settings(args, bed)
    answers: dict[tuple[str, int], DnsAnswer] = {}

    async def record() -> tuple[tuple[str, int], ...]:
        tally = ScanTally()
        async with DnsClient(settings) as client:
            discoverer = Discoverer(RecordingClient(client, answers), policies=False)
            for resolution in await asyncio.gather(*(discoverer.domain(d) for d in domains)):
                tally.add(resolution)
        return tally.work(ClientStats()).asked

    asked = run_loop(record())
    replies = fetch_replies(bed.resolver, asked)
    n, q = len(domains), len(asked)
    memory = MemoryClient(answers)
    steps: list[tuple[str, Callable[[], object]]] = [
        (
            "codec: build_query, parse_message, answer_from_message",
            lambda: codec_pass(asked, replies),
        ),
        ("DnsClient alone (transport and codec)", lambda: run_loop(replay(asked, settings))),
        (
            "Discoverer over an in-memory client",
            lambda: run_loop(discover_from(memory, domains, args.concurrency)),
        ),
        (
            "  of which bare loop trips (the in-memory client)",
            lambda: run_loop(loop_trips(q, args.concurrency)),
        ),
        (
            "Discoverer over DnsClient (the scanner)",
            lambda: run_loop(scanner_pass(domains, settings, args.concurrency)),
        ),
    ]
    layers: dict[str, list[float]] = {label: [] for label, _ in steps}
    for _ in range(args.rounds):
        for label, step in steps:
            layers[label].append(cpu_of(step))
    print(
        f"{n:,} domains, {q:,} queries ({q / n:.2f} per domain), warm Unbound; concurrency "
        f"{args.concurrency}, in flight {args.in_flight}, sockets {args.sockets}; load average "
        f"{os.getloadavg()[0]:.1f}; best and median of {args.rounds} rounds"
    )
    print("| layer | CPU µs per domain (best) | (median) | CPU µs per query (best) |")
    print("|---|---:|---:|---:|")
    for label, values in layers.items():
        best, median = min(values), sorted(values)[len(values) // 2]
        print(f"| {label} | {best / n * 1e6:.1f} | {median / n * 1e6:.1f} | {best / q * 1e6:.1f} |")
