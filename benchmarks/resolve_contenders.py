"""The contenders of bench_resolve.py's comparison, each a pass that returns
how to tally it (``Tally``): the scanner (resolve_pass), dnspython as a
researcher would write it (``dns.asyncresolver`` with its LRU cache, counted
so that each miss is a query sent), and dnsperf replaying the scanner's
queries, the ceiling. The lookups follow RFC 7672 section 2 (MX, A/AAAA,
TLSA at ``_25._tcp.<host>``, the CNAME-expanded base first, section 2.2.2).
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import dns.asyncresolver
import dns.exception
import dns.flags
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
from resolve_pass import Tally, Work, run_loop, scanner_pass

from scanner.resolve.client import ResolverSettings
from scanner.resolve.message import RdType
from testbed.procs import require_binary

_QTYPE_TEXT = {int(t): t.name for t in RdType}


# -- contender 1: the scanner -------------------------------------------------------------


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
