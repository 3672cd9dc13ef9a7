"""The scanner's resolve pass on a testbed, as bench_resolve.py and its parts
(resolve_contenders, resolve_breakdown, resolve_instructions) run it: the
testbed brought up on its own loopback net (or reused), the Discoverer over
DnsClient on uvloop, ``concurrency`` domains at a time, and what a pass did
(``Work``), counted as results arrive. The lookups are RFC 7672 section 2:
MX, A and AAAA of each MX host, TLSA at ``_25._tcp.<host>``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import uvloop

from scanner.collector import collector_for_scan
from scanner.config import ScanConfig
from scanner.resolve.client import ClientStats, DnsClient, ResolverSettings
from scanner.resolve.discover import Discoverer, DomainResolution, HostResolution
from scanner.resolve.message import RdType
from scanner.resolve.policy import MxKind, TlsaState, tlsa_bases, tlsa_name
from testbed import cli


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


# -- the scanner's pass --------------------------------------------------------------------


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
            # The DANE lookups only, the queries ScanTally replays to dnsperf;
            # the lookups beside DANE are bench_policies' to measure.
            discoverer = Discoverer(client, cache_size=HOST_CACHE_SIZE, policies=False)
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


T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


def scanner_settings(args: argparse.Namespace, bed: Bed) -> ResolverSettings:
    """The scanner's client as the command line sets it up."""
    return ResolverSettings(
        servers=(bed.resolver,), max_in_flight=args.in_flight, sockets=args.sockets
    )
