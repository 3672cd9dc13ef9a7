"""`make demo`: bring a testbed up, show some of its domains resolving with their
DNSSEC status through the scanner's own resolver client, and take it down."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from pathlib import Path

import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from scanner.resolve.client import DnsClient, ResolverSettings
from scanner.resolve.discover import Discoverer, DomainResolution
from testbed import cli
from testbed.procs import TestbedError

SHOWN = (
    "dane_provider_a", "ee_311", "ta_211_intermediate", "cname_tlsa_expanded",
    "implicit_mx_tlsa", "signed_no_tlsa", "signed_tlsa_nodata", "unsigned_provider",
    "insecure_delegation_tlsa", "null_mx", "nxdomain", "bogus_mx", "bogus_tlsa", "lame_tlsa",
    "big_tlsa_rrset",
)  # fmt: skip


async def resolve_all(resolver: str, domains: Sequence[str]) -> list[DomainResolution]:
    async with DnsClient(ResolverSettings(servers=(resolver,))) as client:
        discoverer = Discoverer(client)
        return list(await asyncio.gather(*(discoverer.domain(d) for d in domains)))


def show(console: Console, state: dict[str, object]) -> None:
    truth = pq.read_table(str(state["truth_file"])).to_pylist()
    picked: dict[str, dict[str, object]] = {}
    for row in truth:
        picked.setdefault(str(row["scenario"]), row)
    rows = [picked[s] for s in SHOWN if s in picked]
    results = asyncio.run(resolve_all(str(state["resolver"]), [str(r["domain"]) for r in rows]))
    table = Table(title=f"{len(rows)} testbed domains through {state['resolver']}")
    for column in ("domain", "scenario", "MX", "MX DNSSEC", "hosts", "addresses", "TLSA"):
        table.add_column(column)
    for row, result in zip(rows, results, strict=True):
        hosts = "\n".join(h.host for h in result.hosts) or "-"
        addresses = "\n".join(h.addresses.dnssec.value for h in result.hosts) or "-"
        tlsa = "\n".join(f"{h.tlsa.state.value} ({len(h.tlsa.records)})" for h in result.hosts)
        table.add_row(
            str(row["domain"]), str(row["scenario"]), result.mx.kind.value,
            result.mx.dnssec.value, hosts, addresses, tlsa or "-",
        )  # fmt: skip
    console.print(table)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".testbed/demo"))
    parser.add_argument("--domains", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--net", type=int, default=cli.DEFAULT_NET)
    args = parser.parse_args(argv)
    console = Console(stderr=False)
    try:
        console.print(f"[bold]bringing up a testbed of {args.domains} domains in {args.dir}")
        state = cli.up(
            args.dir, domains=args.domains, seed=args.seed, net=args.net, out=console.print
        )
    except TestbedError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    try:
        show(console, state)
    finally:
        cli.down(args.dir)
        console.print("testbed stopped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
