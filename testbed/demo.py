"""`make demo`: the main job on the built-in simulated internet.

Brings a testbed up, scans all of its domains with `scan` (the same code a
survey of the real internet runs), prints the summary and how the dataset
compares with the testbed's ground truth, and takes the testbed down.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

from scanner.config import ScanConfig
from scanner.run import run_scan
from testbed import cli
from testbed.procs import TestbedError
from testbed.profile import Profile

EHLO_NAME = "scanner.danescan.test"


def compare(console: Console, results: Path, truth: Path) -> int:
    """Print per-scenario agreement with the truth; return the number of mismatches."""
    rows = (
        duckdb.connect()
        .execute(
            f"""
        WITH got AS (SELECT domain, verdict, [(h.host, h.verdict) FOR h IN mx_hosts] AS hosts
                     FROM read_parquet('{results}/part-*.parquet')),
             want AS (SELECT domain, scenario, verdict,
                      [(h.host, h.verdict) FOR h IN mx_hosts] AS hosts FROM '{truth}')
        SELECT scenario, any_value(want.verdict), count(*),
               count(*) FILTER (WHERE want.verdict IS NOT DISTINCT FROM got.verdict
                                  AND want.hosts IS NOT DISTINCT FROM got.hosts)
        FROM want LEFT JOIN got USING (domain)
        GROUP BY scenario ORDER BY count(*) DESC, scenario
        """
        )
        .fetchall()
    )
    table = Table(title="scan vs. the testbed's truth, per scenario")
    for column in ("scenario", "expected verdict", "domains", "as expected"):
        table.add_column(
            column, justify="right" if column in ("domains", "as expected") else "left"
        )
    wrong = 0
    for scenario, verdict, total, agree in rows:
        wrong += total - agree
        mark = "" if agree == total else " [red]✗"
        table.add_row(scenario, verdict, f"{total:,}", f"{agree:,}{mark}")
    console.print(table)
    return wrong


def _deadline(state: dict[str, object]) -> float:
    if state.get("profile") != Profile.INTERNET.value:
        return 5.0
    policy = state["truth_policy"]
    assert isinstance(policy, dict)
    return float(policy["session_deadline_s"])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".testbed/demo"))
    parser.add_argument("--domains", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--net", type=int, default=cli.DEFAULT_NET)
    parser.add_argument("--rate", type=float, default=2000.0)
    parser.add_argument("--profile", type=Profile, choices=list(Profile), default=Profile.LOOPBACK)
    parser.add_argument("--latency-scale", type=float, default=1.0, metavar="F")
    args = parser.parse_args(argv)
    console = Console()
    console.print(
        f"[bold]1. Bringing up a testbed of {args.domains:,} domains in {args.dir} "
        f"({args.profile.value} profile)"
    )
    try:
        state = cli.up(
            args.dir,
            domains=args.domains,
            seed=args.seed,
            net=args.net,
            profile=args.profile,
            latency_scale=args.latency_scale,
            out=console.print,
        )
    except TestbedError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 1
    try:
        results = args.dir.resolve() / "results"
        shutil.rmtree(results, ignore_errors=True)
        scan_args = state["scan_args"]
        extra = " ".join(map(str, scan_args)) if isinstance(scan_args, list) else ""
        console.print(
            f"[bold]2. scan {state['domains_file']} --rate {args.rate:g} -o {results} {extra}"
        )
        config = ScanConfig(
            input=str(state["domains_file"]),
            output=str(results),
            rate=args.rate,
            resolvers=(str(state["resolver"]),),
            bogus_probe=str(state["bogus_probe"]),
            ehlo_name=EHLO_NAME,
            # Its addresses are loopback ones, which a scan contacts only
            # where told to (testbed.json "scan_args").
            allow_ranges=cli.allow_ranges(state),
            # Its MTA-STS policy hosts have certificates of its own WebPKI roots.
            pkix_ca=cli.pkix_ca(state),
            # The testbed's hosts are ours: no need to pace them, nor to wait
            # long before trying one again.
            min_interval=0.0,
            retry_backoff=0.5,
            # Loopback hosts answer at once; on the internet profile, the
            # deadline the truth assumes (hosts that pause must pass).
            timeout=_deadline(state),
        )
        status = run_scan(config)
        if status != 0:
            return status
        console.print("[bold]3. The dataset against the ground truth")
        wrong = compare(console, results, Path(str(state["truth_file"])))
        verdict = "every domain as expected" if not wrong else f"{wrong} domains differ"
        console.print(f"[bold]{verdict}[/]; dataset in {results} (DuckDB, pandas, polars)")
        return 0 if not wrong else 1
    finally:
        cli.down(args.dir)
        console.print("4. Testbed stopped")


if __name__ == "__main__":
    raise SystemExit(main())
