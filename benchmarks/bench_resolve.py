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
the whole, per domain, in alternating rounds. ``--instructions`` counts the
instructions per query of a warm scanner pass under valgrind.

This script holds the command line, the comparison, the sweep and the
report; its parts are modules beside it: resolve_pass (the testbed and the
scanner's pass), resolve_contenders (the scanner, dnspython and dnsperf as
contenders), resolve_breakdown (``--breakdown``) and resolve_instructions
(``--instructions``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Literal

import dns.version
from procstat import Usage, busy_share
from resolve_breakdown import breakdown
from resolve_contenders import (
    baseline_contender,
    dnsperf_contender,
    scanner_contender,
    write_dnsperf_input,
)
from resolve_instructions import counted_pass, instructions
from resolve_pass import (
    DNS_IN_FLIGHT,
    RESOLVE_TASKS,
    Bed,
    Tally,
    Work,
    bring_up,
    run_loop,
    scanner_pass,
    scanner_settings,
)

from scanner.resolve.client import ResolverSettings
from testbed import cli

# -- what a pass measured -----------------------------------------------------------

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


# -- running passes -----------------------------------------------------------------------------


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
