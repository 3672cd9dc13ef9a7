"""Benchmark of the testbed's DNS half (testbed.dns): zone generation and
DNSSEC signing (RFC 4033-4035, ldns-signzone), NSD loading and Unbound start,
for a synthetic zone list shaped like the planner's at N domains:

- the root, two signed TLDs (example., test.) and an unsigned one (alt.);
- about 93 % of N as plain names in alt. (MX + A each, no zone cuts);
- 3 % of N as signed domain zones (SOA, NS, DNSKEY, MX, A, AAAA, half with
  TLSA) delegated with a DS from the signed TLDs;
- 0.3 % of N as insecure, wrong-DS, expired, corrupted and lame zones.

It builds cold, starts NSD and Unbound, checks a few answers, stops them, then
builds again into the same folder (every signed file reused) and starts again.

Run as root (port 53): ``.venv/bin/python benchmarks/bench_testbed_dns.py --domains 100000``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import resource
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from testbed.dns import DnsBuild, build_dns, probe_dns, start_dns
from testbed.model import DsMode, Record, Zone
from testbed.procs import ProcessTable

_TTL = 3600
_SIGNED_TLDS = ("example.", "test.")
_BOGUS_KINDS = ("insecure", "wrong_ds", "expired", "corrupt", "lame")


def synthetic_zones(n: int, *, seed: int) -> list[Zone]:
    """A zone list shaped like the planner's for ``n`` domains."""
    rng = random.Random(seed)

    def address() -> str:
        return f"127.{rng.randrange(1, 99)}.{rng.randrange(0, 255)}.{rng.randrange(1, 255)}"

    def mail_records(domain: str, *, tlsa: bool) -> list[Record]:
        host = f"mx.{domain}"
        records = [
            Record(domain, _TTL, "MX", f"10 {host}"),
            Record(host, _TTL, "A", address()),
            Record(host, _TTL, "AAAA", f"fd00::{rng.randrange(1, 0xFFFF):x}"),
        ]
        if tlsa:
            digest = rng.randbytes(32).hex()
            records.append(Record(f"_25._tcp.{host}", _TTL, "TLSA", f"3 1 1 {digest}"))
        return records

    signed_count = max(1, n * 3 // 100)
    special_count = max(len(_BOGUS_KINDS), n * 3 // 1000)
    bulk_count = n - signed_count - special_count

    bulk: list[Record] = []
    for i in range(bulk_count):
        domain = f"bulk{i}.alt."
        bulk.append(Record(domain, _TTL, "MX", f"10 mx.{domain}"))
        bulk.append(Record(f"mx.{domain}", _TTL, "A", address()))
    zones = [
        Zone("."),
        *(Zone(tld) for tld in _SIGNED_TLDS),
        Zone("alt.", tuple(bulk), signed=False),
    ]
    for i in range(signed_count):
        domain = f"signed{i}.{_SIGNED_TLDS[i % 2]}"
        zones.append(Zone(domain, tuple(mail_records(domain, tlsa=i % 2 == 0))))
    for i in range(special_count):
        kind = _BOGUS_KINDS[i % len(_BOGUS_KINDS)]
        domain = f"{kind.replace('_', '')}{i}.{_SIGNED_TLDS[i % 2]}"
        records = tuple(mail_records(domain, tlsa=True))
        if kind == "insecure":
            zones.append(Zone(domain, records, signed=False, parent_ds=DsMode.NONE))
        elif kind == "wrong_ds":
            zones.append(Zone(domain, records, parent_ds=DsMode.WRONG))
        elif kind == "expired":
            zones.append(Zone(domain, records, expired=True))
        elif kind == "corrupt":
            zones.append(Zone(domain, records, corrupt_rrsets=((domain, "MX"),)))
        else:
            zones.append(Zone(domain, records, lame=True))
    return zones


def _pss_mib(pid: int) -> float:
    """Proportional set size of a process group led by ``pid`` (MiB)."""
    total_kib = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            if int(stat[stat.rindex(")") + 2 :].split()[2]) != pid:
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total_kib += int(line.split()[1])
        except (FileNotFoundError, ProcessLookupError, ValueError):
            continue
    return total_kib / 1024


@contextmanager
def _servers(build: DnsBuild, table: ProcessTable) -> Iterator[dict[str, float]]:
    timings: dict[str, float] = {}
    started = time.monotonic()
    try:
        start_dns(build, table, timeout=600)
        timings["start_seconds"] = time.monotonic() - started
        yield timings
    finally:
        table.stop_all()


def _check_answers(build: DnsBuild) -> None:
    secure = probe_dns(build.resolver_address, recursion=True)
    if secure != (0, True):
        raise SystemExit(f"the resolver did not validate the root: {secure}")


def _run(zones: list[Zone], workdir: Path, net: int, jobs: int, label: str) -> None:
    auth, resolver, lame = (f"127.{net}.255.{host}" for host in (1, 2, 3))
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    build = build_dns(
        zones,
        workdir / "dns",
        auth_address=auth,
        resolver_address=resolver,
        lame_address=lame,
        seed=1,
        now=dt.datetime.now(dt.UTC),
        jobs=jobs,
    )
    build_seconds = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_self, cpu_signers = (
        (a.ru_utime + a.ru_stime) - (b.ru_utime + b.ru_stime)
        for a, b in zip(after, before, strict=True)
    )
    table = ProcessTable(workdir / "processes.json")
    with _servers(build, table) as timings:
        _check_answers(build)
        memory = {name: round(_pss_mib(pid)) for name, pid in _pids(table).items()}
    print(
        f"{label}: zones served {build.zones}, signed {build.signed}, reused {build.reused}; "
        f"build_dns {build_seconds:.1f} s (ldns-signzone {build.signing_seconds:.1f} s; CPU: "
        f"Python {cpu_self:.1f} s, signers {cpu_signers:.1f} s"
        f"{f' = {1000 * cpu_signers / build.signed:.1f} ms/zone' if build.signed else ''}); "
        f"NSD + Unbound ready {timings['start_seconds']:.1f} s; "
        f"memory (PSS) nsd {memory.get('nsd')} MiB, unbound {memory.get('unbound')} MiB",
        flush=True,
    )


def _pids(table: ProcessTable) -> dict[str, int]:
    return {name: int(entry["pid"]) for name, entry in json.loads(table.path.read_text()).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--domains", type=int, default=100_000)
    parser.add_argument("--jobs", type=int, default=2, help="ldns-signzone processes at once")
    parser.add_argument("--net", type=int, default=209, help="servers on 127.NET.255.1-3")
    parser.add_argument("--dir", type=Path, help="work folder (default: a temporary one)")
    args = parser.parse_args()

    started = time.monotonic()
    zones = synthetic_zones(args.domains, seed=1)
    records = sum(len(zone.records) for zone in zones)
    print(
        f"{args.domains} domains: {len(zones)} zones, {records} records "
        f"(generated in {time.monotonic() - started:.1f} s)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="bench-dns-") as tmp:
        workdir = args.dir or Path(tmp)
        _run(zones, workdir, args.net, args.jobs, "cold")
        _run(zones, workdir, args.net, args.jobs, "warm (signed files reused)")


if __name__ == "__main__":
    main()
