"""Resolve-stage throughput (scanner.resolve): the scanner's Discoverer against
dnsperf and a plain dnspython implementation, side by side, in one run.

What is measured: MX, then A and AAAA of every MX host, then TLSA (RFC 7672
section 2.2) for every domain of a testbed (default 100,000 domains, brought
up here on its own loopback net), through the testbed's validating Unbound.
Three contenders:

- scanner: ``Discoverer`` over ``DnsClient`` (uvloop), ``--concurrency``
  domains in flight and at most ``--in-flight`` queries outstanding (by
  default 150 and 400, held fixed where the pipeline's flow control would
  size them; see ``--sweep`` for the trade-off), over
  ``--sockets`` UDP sockets; the per-host single-flight cache is part of it.
- dnsperf: the very queries the scanner asked in its cold pass (rebuilt from
  its results, in order, DO bit set) replayed by dnsperf, ``-q`` outstanding:
  the ceiling, since it waits for nothing (no MX before A before TLSA) and
  decodes nothing. Its domains/s is the domain count over its run time.
- dnspython: what a researcher would write: ``dns.asyncresolver`` with DO
  and AD set, MX then A/AAAA then TLSA (expanded CNAME target first), the
  library's own LRU cache switched on (one line, so shared provider hosts
  are not asked again: this makes the baseline stronger, not weaker), the
  same loop (uvloop) and ``--baseline-concurrency`` domains in flight.

Cache state: Unbound is restarted before each contender, which then makes a
cold pass (Unbound's cache empty, as for a real scan, where every domain is
new) and at once a warm pass (every answer cached). So each contender meets
the same cache states; the scanner's own host cache is new in every pass.
The testbed (NSD, Unbound, an idle STARTTLS responder) shares the two cores
with the contender, as it would in ``make demo``.

Reported per pass: domains/s, queries/s, the contender's CPU time per query
(process CPU time over queries sent) and the CPU that Unbound and NSD used,
plus how busy the whole machine was (from /proc/stat). ``--repeat N`` makes
N rounds of the scanner and dnsperf, taking turns, and compares medians.

Run as root (the testbed binds port 53), from the repository root::

    .venv/bin/python benchmarks/bench_resolve.py
    .venv/bin/python benchmarks/bench_resolve.py --dir /tmp/b88 --keep   # then --reuse
    .venv/bin/python benchmarks/bench_resolve.py --reuse --dir /tmp/b88 --sweep

``--sweep`` tunes instead: passes of the scanner over a grid of concurrency,
in-flight and socket counts (warm, or cold with ``--sweep-cold``), on
``--limit`` domains. ``--breakdown`` says where the scanner's CPU goes: the
codec alone, DnsClient alone, the Discoverer over an in-memory client, and
the whole, per domain, in alternating rounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, TypeVar

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import dns.version
import uvloop
from procstat import Usage, busy_share

from scanner import names
from scanner.collector import collector_for_scan
from scanner.config import ScanConfig
from scanner.resolve.answer import answer_from_message
from scanner.resolve.client import ClientStats, DnsAnswer, DnsClient, ResolverSettings
from scanner.resolve.discover import Asker, Discoverer, DomainResolution, HostResolution
from scanner.resolve.message import Message, RdType
from scanner.resolve.policy import MxKind, TlsaState, tlsa_bases, tlsa_name
from scanner.resolve.wire import build_query, parse_message
from testbed import cli
from testbed.procs import require_binary

_QTYPE_TEXT = {int(t): t.name for t in RdType}


# The scanner's host cache as the pipeline sets it up. Domains and queries in
# flight are sized by the pipeline's flow control as it runs (between
# ScanConfig's min_/max_ bounds); the benchmark holds them fixed, at the
# values the flow control's predecessor used, so passes compare.
def _pipeline_default(name: str) -> int:
    value = ScanConfig.__dataclass_fields__[name].default
    if not isinstance(value, int):
        raise TypeError(f"ScanConfig.{name} has no integer default")
    return value


HOST_CACHE_SIZE = _pipeline_default("host_cache_size")
RESOLVE_TASKS = 150
DNS_IN_FLIGHT = 400


# -- what a pass measured -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Work:
    """What one pass of a contender did, as it counts it."""

    queries: int  # queries sent (UDP datagrams for the scanner, including retries)
    # scanner: UDP attempts that timed out; dnsperf: queries lost; dnspython:
    # lookups that ran out of their lifetime
    timeouts: int
    summary: Counter[str] = field(default_factory=Counter)  # outcomes, to compare work done
    asked: tuple[tuple[str, int], ...] = ()  # (name, type) in order, once each
    tcp: int = 0  # TCP retries after TC


# A pass runs the contender while the clock runs and returns how to tally it,
# so that building summaries and the query list happens after the clock stops.
Tally = Callable[[], Work]
Cache = Literal["cold", "warm"]
CpuSource = Literal["own", "children"]  # this process, or its child (dnsperf)


@dataclass(frozen=True, slots=True)
class PassResult:
    """One pass of one contender over the domains, and what it cost."""

    contender: str
    cache: Cache  # Unbound's cache at the start of the pass
    domains: int
    work: Work
    before: Usage
    after: Usage
    cpu_source: CpuSource

    @property
    def queries(self) -> int:
        return self.work.queries

    @property
    def wall(self) -> float:
        return self.after.wall - self.before.wall

    @property
    def cpu(self) -> float:
        if self.cpu_source == "children":
            return self.after.children - self.before.children
        return self.after.own - self.before.own

    @property
    def unbound_cpu(self) -> float:
        return self.after.unbound - self.before.unbound

    @property
    def nsd_cpu(self) -> float:
        return self.after.nsd - self.before.nsd

    @property
    def machine_busy(self) -> float:
        return busy_share(self.before, self.after)

    def row(self) -> str:
        q = max(self.queries, 1)
        return (
            f"| {self.contender} | {self.cache} | {self.domains:,} | {self.wall:.1f} "
            f"| {self.domains / self.wall:,.0f} | {self.queries:,} "
            f"| {self.queries / self.wall:,.0f} "
            f"| {self.cpu / q * 1e6:.1f} | {self.unbound_cpu / q * 1e6:.1f} "
            f"| {self.nsd_cpu:.1f} | {self.machine_busy:.0%} | {self.work.timeouts:,} |"
        )


HEADER = (
    "| contender | Unbound cache | domains | wall s | domains/s | queries | queries/s "
    "| contender CPU µs/query | Unbound CPU µs/query | NSD CPU s | machine busy | timeouts |\n"
    "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)


# -- the testbed and its Unbound --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bed:
    """A running testbed: its folder and testbed.json."""

    directory: Path
    state: dict[str, object]

    @property
    def resolver(self) -> str:
        return str(self.state["resolver"])

    @property
    def table(self) -> Path:
        return self.directory / cli.PROCESS_FILE

    def domains(self) -> list[str]:
        return Path(str(self.state["domains_file"])).read_text().split()

    def restart_unbound(self) -> None:
        cli.restart_unbound(self.directory)


def bring_up(args: argparse.Namespace) -> tuple[Bed, bool]:
    """The testbed to measure and whether this run started it."""
    directory: Path = args.dir
    if args.reuse:
        state, running = cli.status(directory)
        if not running or not all(running.values()):
            raise SystemExit(f"the testbed in {directory} is not running: {running}")
        return Bed(directory, state), False
    directory.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    state = cli.up(
        directory,
        domains=args.domains,
        seed=args.seed,
        net=args.net,
        with_postfix=False,
        ipv6=False,
        out=lambda line: print(f"  testbed: {line}", file=sys.stderr),
    )
    print(f"testbed up in {time.monotonic() - started:.0f} s", file=sys.stderr)
    return Bed(directory, state), True


# -- contender 1: the scanner -------------------------------------------------------------


class ScanTally:
    """Counts a scanner pass as results arrive, keeping no results: a pass
    that held 100,000 resolutions made the garbage collector walk them all
    (10-25 µs per domain more), which a pipeline that hands results on never
    pays. The queries asked are rebuilt from the results: one MX per domain,
    then per new host A, AAAA and a TLSA per base tried, each once
    (tests/integration/test_resolve_testbed.py checks that this is exactly
    what the Discoverer sends)."""

    def __init__(self) -> None:
        self.mx: Counter[MxKind] = Counter()
        self.tlsa: Counter[TlsaState] = Counter()
        self.asked: list[tuple[str, int]] = []
        self._seen: set[str] = set()

    def add(self, resolution: DomainResolution) -> None:
        self.mx[resolution.mx.kind] += 1
        self.asked.append((resolution.domain, RdType.MX))
        for host in resolution.hosts:
            self.tlsa[host.tlsa.state] += 1
            if host.host not in self._seen:
                self._seen.add(host.host)
                self.asked += [(host.host, RdType.A), (host.host, RdType.AAAA)]
                self.asked += [(tlsa_name(base), RdType.TLSA) for base in _bases_asked(host)]

    def work(self, stats: ClientStats) -> Work:
        summary: Counter[str] = Counter()
        for kind, n in self.mx.items():
            summary[f"mx {kind.value}"] += n
        for state, n in self.tlsa.items():
            summary[f"tlsa {_coarse_tlsa(state)}"] += n
        return Work(stats.sent, stats.timeouts, summary, tuple(self.asked), tcp=stats.tcp)


def _bases_asked(host: HostResolution) -> tuple[str, ...]:
    """The TLSA base domains asked for ``host``: the candidates (RFC 7672
    section 2.2.2) up to the one whose RRset the Discoverer kept."""
    if host.tlsa.state is TlsaState.NOT_LOOKED_UP:
        return ()
    bases = tlsa_bases(host.host, host.addresses)
    return bases[: bases.index(host.tlsa.base) + 1]


async def scanner_pass(
    domains: Sequence[str], settings: ResolverSettings, concurrency: int
) -> tuple[ClientStats, ScanTally]:
    """Resolve every domain, ``concurrency`` at a time, as the pipeline's
    resolve tasks do: its host cache size and its garbage-collector settings
    (with the defaults, full collections walk every cached host)."""
    tally = ScanTally()
    with collector_for_scan():
        async with DnsClient(settings) as client:
            discoverer = Discoverer(client, cache_size=HOST_CACHE_SIZE)
            names = iter(domains)

            async def worker() -> None:
                for name in names:
                    tally.add(await discoverer.domain(name))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
            return client.stats, tally


def _coarse_tlsa(state: TlsaState) -> str:
    """The TLSA state in words both implementations can tell apart."""
    if state in (TlsaState.NXDOMAIN, TlsaState.NODATA):
        return "absent"
    if state in (TlsaState.BOGUS, TlsaState.SERVFAIL, TlsaState.TIMEOUT, TlsaState.ERROR):
        return "failed"
    return state.value


def scanner_contender(
    domains: Sequence[str], settings: ResolverSettings, concurrency: int
) -> Callable[[], Tally]:
    def run() -> Tally:
        stats, tally = run_loop(scanner_pass(domains, settings, concurrency))
        return lambda: tally.work(stats)

    return run


# -- contender 2: dnspython, as a researcher would write it -------------------------------


class CountingCache(dns.resolver.LRUCache):
    """dnspython's LRU cache, counting misses: each miss is a query sent
    (dnspython also looks up (name, ANY) for cached NXDOMAINs: not counted)."""

    def __init__(self, max_size: int) -> None:
        super().__init__(max_size)
        self.missed = 0

    def get(
        self, key: tuple[dns.name.Name, dns.rdatatype.RdataType, dns.rdataclass.RdataClass]
    ) -> dns.resolver.Answer | None:
        found = super().get(key)
        if found is None and key[1] != dns.rdatatype.ANY:
            self.missed += 1
        return found


@dataclass(frozen=True, slots=True)
class Looked:
    """One dnspython lookup, reduced to what the discovery needs."""

    outcome: str  # answer, nodata, nxdomain, failed
    secure: bool  # AD set
    answer: dns.resolver.Answer | None = None


class Baseline:
    """MX, then A/AAAA, then TLSA with dns.asyncresolver, as its manual shows.

    dnspython rejects a TLSA record whose digest length does not fit its
    matching type (FormError), drops the whole reply as malformed and waits
    for another until its lifetime runs out: the testbed's malformed_records
    hosts end as timeouts here, where the scanner reports the records."""

    def __init__(self, resolver: str) -> None:
        address, port = resolver.rsplit(":", 1)
        self.cache = CountingCache(1_000_000)
        self.timeouts = 0
        r = dns.asyncresolver.Resolver(configure=False)
        r.nameservers = [address]
        r.port = int(port)
        r.use_edns(0, dns.flags.DO, 1232)
        r.flags = dns.flags.RD | dns.flags.AD
        r.timeout = 2.0
        r.lifetime = 10.0
        r.cache = self.cache
        self.resolver = r

    async def lookup(self, name: str, rdtype: str) -> Looked:
        try:
            answer = await self.resolver.resolve(name, rdtype, raise_on_no_answer=False)
        except dns.resolver.NXDOMAIN as exc:
            responses = exc.kwargs.get("responses", {}).values()
            return Looked("nxdomain", any(r.flags & dns.flags.AD for r in responses))
        except dns.resolver.LifetimeTimeout:
            self.timeouts += 1
            return Looked("failed", False)
        except dns.exception.DNSException:  # SERVFAIL: bogus or lame
            return Looked("failed", False)
        secure = bool(answer.response.flags & dns.flags.AD)
        return Looked("answer" if answer.rrset is not None else "nodata", secure, answer)

    async def domain(self, name: str, summary: Counter[str]) -> None:
        mx = await self.lookup(name, "MX")
        hosts: list[str] = []
        if mx.outcome == "nodata":
            kind, hosts = "implicit", [name.lower().rstrip(".") + "."]
        elif mx.answer is None or mx.answer.rrset is None:
            kind = mx.outcome if mx.outcome == "nxdomain" else "failed"
        else:
            records = sorted(mx.answer.rrset, key=lambda r: (r.preference, r.exchange))
            if len(records) == 1 and records[0].exchange == dns.name.root:
                kind = "null"
            else:
                kind = "hosts"
                hosts = list(dict.fromkeys(r.exchange.to_text().lower() for r in records))[:10]
        summary[f"mx {kind}"] += 1
        for state in await asyncio.gather(*(self.host(h) for h in hosts)):
            summary[f"tlsa {state}"] += 1

    async def host(self, host: str) -> str:
        a, aaaa = await asyncio.gather(self.lookup(host, "A"), self.lookup(host, "AAAA"))
        answered = [x for x in (a, aaaa) if x.outcome != "failed"]
        if not answered or not all(x.secure for x in answered):
            return "not_looked_up"
        bases = [host]
        if a.answer is not None and a.answer.canonical_name.to_text().lower() != host:
            bases.insert(0, a.answer.canonical_name.to_text().lower())
        state = "not_looked_up"
        for base in bases:
            tlsa = await self.lookup(f"_25._tcp.{base}", "TLSA")
            if tlsa.outcome == "failed":
                return "failed"
            if not tlsa.secure:
                state = "insecure"
            elif tlsa.outcome == "answer":
                return "records"
            else:
                state = "absent"
        return state


def baseline_contender(
    resolver: str, domains: Sequence[str], concurrency: int
) -> Callable[[], Tally]:
    async def main() -> tuple[Baseline, Counter[str]]:
        baseline, summary = Baseline(resolver), Counter[str]()
        names = iter(domains)

        async def worker() -> None:
            for name in names:
                await baseline.domain(name, summary)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return baseline, summary

    def run() -> Tally:
        baseline, summary = run_loop(main())
        return lambda: Work(baseline.cache.missed, baseline.timeouts, summary)

    return run


# -- contender 3: dnsperf, the ceiling -----------------------------------------------------


def write_dnsperf_input(asked: Sequence[tuple[str, int]], path: Path) -> None:
    path.write_text("".join(f"{name} {_QTYPE_TEXT[int(t)]}\n" for name, t in asked))


def dnsperf_contender(
    resolver: str, path: Path, outstanding: int, clients: int
) -> Callable[[], Tally]:
    """One run through the file: every query once, ``outstanding`` at a time."""
    address, port = resolver.rsplit(":", 1)
    command = [
        require_binary("dnsperf", "dnsperf"),
        "-s", address, "-p", port, "-d", str(path), "-n", "1", "-D", "-t", "2",
        "-q", str(outstanding), "-c", str(clients),
    ]  # fmt: skip

    def run() -> Tally:
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout

        def number(label: str) -> int:
            found = re.search(rf"{label}:\s+(\d+)", out)
            if found is None:
                raise RuntimeError(f"dnsperf printed no {label!r}:\n{out}")
            return int(found.group(1))

        return lambda: Work(number("Queries sent"), number("Queries lost"))

    return run


# -- running passes -----------------------------------------------------------------------------

T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


@contextlib.contextmanager
def measured(bed: Bed) -> Iterator[list[Usage]]:
    """Usage before and after the block, appended to the yielded list."""
    marks = [Usage.now(bed.table)]
    yield marks
    marks.append(Usage.now(bed.table))


def contender_passes(
    name: str,
    bed: Bed,
    run_pass: Callable[[], Tally],
    domains: int,
    cpu_source: CpuSource = "own",
) -> list[PassResult]:
    """Restart Unbound, then a cold and a warm pass of one contender."""
    bed.restart_unbound()
    results = []
    caches: tuple[Cache, ...] = ("cold", "warm")
    for cache in caches:
        with measured(bed) as marks:
            tally = run_pass()
        result = PassResult(name, cache, domains, tally(), marks[0], marks[1], cpu_source)
        print(result.row(), file=sys.stderr, flush=True)
        results.append(result)
    return results


def scanner_settings(args: argparse.Namespace, bed: Bed) -> ResolverSettings:
    """The scanner's client as the command line sets it up."""
    return ResolverSettings(
        servers=(bed.resolver,), max_in_flight=args.in_flight, sockets=args.sockets
    )


def comparison(args: argparse.Namespace, bed: Bed, domains: list[str]) -> list[PassResult]:
    """The three contenders, each on a restarted Unbound, cold then warm.

    The scanner and dnsperf take turns for ``--repeat`` rounds (on this shared
    machine even dnsperf's cold rate moved by up to 2x within an hour; see
    RESULTS.md); dnspython, at minutes per pass, runs once.
    """
    settings = scanner_settings(args, bed)
    scanner = scanner_contender(domains, settings, args.concurrency)
    path = bed.directory / "bench-resolve-queries.txt"
    results: list[PassResult] = []
    for _ in range(args.repeat):
        ours = contender_passes("scanner", bed, scanner, len(domains))
        results += ours
        if not args.skip_dnsperf:
            write_dnsperf_input(ours[0].work.asked, path)
            run = dnsperf_contender(
                bed.resolver, path, args.dnsperf_outstanding, args.dnsperf_clients
            )
            results += contender_passes("dnsperf", bed, run, len(domains), "children")
    if not args.skip_baseline:
        run = baseline_contender(bed.resolver, domains, args.baseline_concurrency)
        results += contender_passes("dnspython", bed, run, len(domains))
    return results


def sweep(args: argparse.Namespace, bed: Bed, domains: list[str]) -> None:
    """Passes of the scanner over a grid: warm (a first pass warms Unbound) or,
    with --sweep-cold, each on a restarted Unbound."""
    grid = [
        (concurrency, in_flight, sockets)
        for concurrency in args.sweep_concurrency
        for in_flight in args.sweep_in_flight
        for sockets in args.sweep_sockets
    ]
    cache: Cache = "cold" if args.sweep_cold else "warm"
    if not args.sweep_cold:
        warmup = ResolverSettings(servers=(bed.resolver,), max_in_flight=500)
        run_loop(scanner_pass(domains, warmup, 1000))
    print(f"{cache} sweep over {len(domains):,} domains; load average {os.getloadavg()[0]:.1f}")
    print(
        "| concurrency | in flight | sockets | domains/s | CPU µs/query | machine busy | timeouts |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for concurrency, in_flight, sockets in grid:
        settings = ResolverSettings(
            servers=(bed.resolver,), max_in_flight=in_flight, sockets=sockets
        )
        if args.sweep_cold:
            bed.restart_unbound()
        with measured(bed) as marks:
            tally = scanner_contender(domains, settings, concurrency)()
        result = PassResult("scanner", cache, len(domains), tally(), marks[0], marks[1], "own")
        print(
            f"| {concurrency} | {in_flight} | {sockets} | {result.domains / result.wall:,.0f} "
            f"| {result.cpu / result.queries * 1e6:.1f} | {result.machine_busy:.0%} "
            f"| {result.work.timeouts} |",
            flush=True,
        )


# -- where the scanner's CPU goes ------------------------------------------------------------


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
    discoverer = Discoverer(client)
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
            discoverer = Discoverer(RecordingClient(client, answers))
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


def report(
    args: argparse.Namespace, bed: Bed, results: list[PassResult], load_before: float
) -> None:
    load = os.getloadavg()[0]
    state = bed.state
    unbound = subprocess.run(["unbound", "-V"], capture_output=True, text=True).stdout.split()
    print(
        f"\nPython {platform.python_version()}, uvloop {version('uvloop')}, dnspython "
        f"{dns.version.version}, Unbound {unbound[1] if len(unbound) > 1 else '?'}; "
        f"{os.cpu_count()} cores; load average (1 min) {load_before:.1f} before, {load:.1f} after"
    )
    print(f"testbed: {state['domains']} domains, {state['zones']} zones, seed {state['seed']}")
    print(
        f"scanner: concurrency {args.concurrency}, in flight {args.in_flight}, "
        f"sockets {args.sockets}; dnspython: concurrency {args.baseline_concurrency}; "
        f"dnsperf: -q {args.dnsperf_outstanding} -c {args.dnsperf_clients}\n"
    )
    print(HEADER)
    for result in results:
        print(result.row())
    rates: dict[tuple[str, str], list[float]] = {}
    for r in results:
        rates.setdefault((r.contender, r.cache), []).append(r.domains / r.wall)
    for cache in ("cold", "warm"):
        ours = rates.get(("scanner", cache))
        if ours is None:
            continue
        rate = statistics.median(ours)
        spread = (
            f" (median of {len(ours)}: {min(ours):,.0f}-{max(ours):,.0f})" if len(ours) > 1 else ""
        )
        parts = [f"{cache}: scanner {rate:,.0f} domains/s{spread}"]
        for other in ("dnsperf", "dnspython"):
            theirs = rates.get((other, cache))
            if theirs is not None:
                parts.append(f"{rate / statistics.median(theirs):.2f}x {other}")
        print("; ".join(parts))
    last = {(r.contender, r.cache): r for r in results}
    scanner = last.get(("scanner", "warm"))
    baseline = last.get(("dnspython", "warm"))
    if scanner is not None:
        done = sorted(scanner.work.summary.items())
        print(f"\nscanner outcomes: {done}; TCP retries {scanner.work.tcp}")
        if baseline is not None and sorted(baseline.work.summary.items()) != done:
            print(f"dnspython outcomes DIFFER: {sorted(baseline.work.summary.items())}")


# -- instructions per query ---------------------------------------------------------------

_VALGRIND_TOTAL = re.compile(r"I\s+refs:\s+([\d,]+)")


def counted_pass(bed: Bed, count: int) -> None:
    """The child under valgrind: a warm scanner pass over the first ``count``
    domains, gently (valgrind runs it some fifty times slower, and replies
    waiting in the socket must not time out)."""
    settings = ResolverSettings(servers=(bed.resolver,), max_in_flight=60, sockets=4, timeout=20.0)
    stats, _ = run_loop(scanner_pass(bed.domains()[:count], settings, 30))
    print(f"sent {stats.sent} timeouts {stats.timeouts}")


def instructions(args: argparse.Namespace, bed: Bed, domains: list[str]) -> None:
    """Instructions per query of a warm scanner pass, by valgrind: the
    difference between a pass of ``--limit`` domains and one three times as
    long, over the difference in queries sent."""
    valgrind = require_binary("valgrind", "valgrind")
    short = args.limit or 2_000
    settings = scanner_settings(args, bed)
    run_loop(scanner_pass(domains[: 3 * short], settings, args.concurrency))  # Unbound warm
    counted: list[tuple[int, int]] = []
    # Fixed so that two runs count alike: OpenBLAS (numpy, imported with the
    # pipeline) starts worker threads that spin for a while, some millions of
    # instructions more or less each run (5-10% of the difference counted),
    # and string hashing decides how dictionaries collide.
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    for count in (short, 3 * short):
        command = [
            valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
            sys.executable, __file__, "--counted-pass", str(count), "--dir", str(bed.directory),
            "--reuse",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        total = _VALGRIND_TOTAL.search(done.stderr)
        sent = re.search(r"sent (\d+) timeouts (\d+)", done.stdout)
        if total is None or sent is None:
            raise SystemExit(f"valgrind run failed:\n{done.stdout}\n{done.stderr[-2000:]}")
        if int(sent.group(2)):
            raise SystemExit(f"{sent.group(2)} timeouts under valgrind: the count is not clean")
        counted.append((int(total.group(1).replace(",", "")), int(sent.group(1))))
        print(f"{count:>6} domains: {counted[-1][1]:>6} queries, {counted[-1][0]:,} instructions")
    (small, small_sent), (large, large_sent) = counted
    per_query = (large - small) / (large_sent - small_sent)
    per_domain = (large - small) / (2 * short)
    print(f"scanner, warm: {per_query:,.0f} instructions per query, {per_domain:,.0f} per domain")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--net", type=int, default=88, help="the testbed's 127.NET.0.0/16")
    parser.add_argument("--dir", type=Path, default=None, help="testbed folder (default: temp)")
    parser.add_argument("--reuse", action="store_true", help="measure the testbed already in --dir")
    parser.add_argument("--keep", action="store_true", help="leave the testbed running")
    parser.add_argument("--limit", type=int, default=0, help="only the first N domains")
    parser.add_argument(
        "--concurrency", type=int, default=RESOLVE_TASKS, help="scanner: domains in flight"
    )
    parser.add_argument(
        "--in-flight", type=int, default=DNS_IN_FLIGHT, help="scanner: queries at most"
    )
    parser.add_argument("--sockets", type=int, default=4, help="scanner: UDP sockets")
    parser.add_argument("--baseline-concurrency", type=int, default=200, help="dnspython")
    parser.add_argument("--dnsperf-outstanding", type=int, default=500, help="dnsperf -q")
    parser.add_argument("--dnsperf-clients", type=int, default=4, help="dnsperf -c")
    parser.add_argument("--repeat", type=int, default=1, help="rounds of scanner and dnsperf")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--skip-dnsperf", action="store_true")
    parser.add_argument("--sweep", action="store_true", help="tune the scanner instead")
    parser.add_argument("--sweep-cold", action="store_true", help="restart Unbound each time")
    parser.add_argument("--breakdown", action="store_true", help="CPU per layer instead")
    parser.add_argument("--rounds", type=int, default=3, help="--breakdown: rounds")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions per query (valgrind)"
    )
    parser.add_argument("--counted-pass", type=int, default=0, help=argparse.SUPPRESS)
    for option, values in (
        ("--sweep-concurrency", [250, 1000, 3000]),
        ("--sweep-in-flight", [200, 500, 1000, 2000]),
        ("--sweep-sockets", [1, 4]),
    ):
        parser.add_argument(option, type=int, nargs="+", default=values)
    args = parser.parse_args(argv)
    temporary = args.dir is None
    if temporary:
        if args.reuse:
            parser.error("--reuse needs --dir")
        args.dir = Path(tempfile.mkdtemp(prefix="bench-resolve-"))
        args.dir.chmod(0o755)
    bed, started = bring_up(args)
    if args.counted_pass:
        counted_pass(bed, args.counted_pass)
        return
    try:
        domains = bed.domains()
        if args.instructions:  # --limit sets the shorter pass's length
            instructions(args, bed, domains)
            return
        if args.limit:
            domains = domains[: args.limit]
        if args.sweep:
            sweep(args, bed, domains)
            return
        if args.breakdown:
            breakdown(args, bed, domains)
            return
        print(HEADER, file=sys.stderr)
        load_before = os.getloadavg()[0]
        report(args, bed, comparison(args, bed, domains), load_before)
    finally:
        if started and not args.keep:
            cli.down(bed.directory)
            if temporary:
                shutil.rmtree(bed.directory, ignore_errors=True)


if __name__ == "__main__":
    main()
