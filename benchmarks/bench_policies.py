"""Issue 19's benchmark: what looking beside DANE costs. The same scan of the
same internet-profile testbed, side by side in one command:

- the default scan: per domain the ``_mta-sts`` and ``_smtp._tls`` TXT
  lookups, and for a domain with a valid record the policy fetched over
  HTTPS and its MX hosts contacted and judged under it;
- ``--no-mta-sts``: DANE only, as before issue 19.

Each scan meets a cold Unbound (restarted before it); ``--rounds 2`` runs
them as A B B A so a drift over the run weighs on both. Reported per scan
(bench_scan.run_scan): domains/s, peak memory of all its processes, CPU per
domain, and from the manifest the DNS queries and handshakes per domain;
for the default scan also the domains with an MTA-STS record, the policy
fetches and what they found.

    .venv/bin/python benchmarks/bench_policies.py --domains 1000000 --rate 5000 \\
        --dir /tmp/bench-flow

The testbed is bench_flow's (same net and seed), kept unless --down.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import duckdb
from bench_scan import run_scan
from testbeds import add_testbed_options, internet_testbed

from testbed.cli import restart_unbound

NET = 85
ONE_ATTEMPT = ("--retries", "0")  # greylisting windows would set the tail, not the scanner


def scan(
    args: argparse.Namespace, label: str, work: Path, domains: Path, extra: tuple[str, ...]
) -> dict[str, Any]:
    restart_unbound(args.dir)
    output = work / f"{label}-{len(list(work.iterdir()))}"
    result = run_scan(args, args.dir, domains, output, (*ONE_ATTEMPT, *extra))
    if result is None:
        raise SystemExit(f"bench_policies: the {label} scan failed")
    manifest = json.loads((output / "manifest.json").read_text())
    work_counts = manifest["counts"]["work"]
    (found,) = duckdb.connect().execute(
        f"""SELECT {{'records': count(*) FILTER (mta_sts_record = 'valid'),
                    'fetched': count(*) FILTER (mta_sts_fetch IS NOT NULL),
                    'fetch_ok': count(*) FILTER (mta_sts_fetch = 'ok'),
                    'tlsrpt': count(*) FILTER (tlsrpt_record = 'valid')}}
            FROM '{output}/part-*.parquet'"""
    ).fetchone() or ({},)
    result |= {
        "label": label,
        "dns": work_counts.get("dns", {}),
        "handshakes": work_counts.get("handshakes", {}),
        "policies": found,
    }
    print(json.dumps(result, indent=2, default=str), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_testbed_options(parser)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--net", type=int, default=NET, help="the testbed's loopback net")
    parser.add_argument("--rounds", type=int, default=1, help="pairs, each in the other order")
    args = parser.parse_args()
    pairs = []
    with tempfile.TemporaryDirectory(prefix="bench-policies-") as tmp:
        work = Path(tmp)
        state = internet_testbed(args.dir, net=args.net, domains=args.domains, latency_scale=1.0)
        domains = Path(state["domains_file"])
        for round_ in range(args.rounds):
            order = ("policies", "dane-only") if round_ % 2 == 0 else ("dane-only", "policies")
            done = {
                label: scan(
                    args, label, work, domains, () if label == "policies" else ("--no-mta-sts",)
                )
                for label in order
            }
            pairs.append((done["policies"], done["dane-only"]))
    if args.down:
        subprocess.run([sys.executable, "-m", "testbed.cli", "down", "--dir", str(args.dir)],
                       check=False, stdout=subprocess.DEVNULL)  # fmt: skip
    print("| scan | domains/s | peak MiB, all | scan CPU ms/domain | DNS queries/domain "
          "| sessions/domain | MTA-STS records | policies fetched (ok) "
          "| machine busy |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for with_policies, dane_only in pairs:
        for r in (with_policies, dane_only):
            n = r["domains"]
            sent = r["dns"].get("sent", 0)
            sessions = r["handshakes"].get("sessions", 0)
            p = r["policies"]
            print(
                f"| {r['label']} | {r['domains_per_second_sustained']:,} "
                f"| {r['peak_rss_mib_all_processes']:.0f} "
                f"| {r['cpu_seconds_scan_processes'] * 1e3 / n:.3f} | {sent / n:.3f} "
                f"| {sessions / n:.4f} | {p.get('records', 0):,} "
                f"| {p.get('fetched', 0):,} ({p.get('fetch_ok', 0):,}) | {r['machine_busy']:.0%} |"
            )
        ratios.append(
            with_policies["domains_per_second_sustained"]
            / dane_only["domains_per_second_sustained"]
        )
        extra_cpu = (
            with_policies["cpu_seconds_scan_processes"] - dane_only["cpu_seconds_scan_processes"]
        ) / with_policies["domains"]
        print(f"extra scan CPU per domain with policies: {extra_cpu * 1e3:.3f} ms")
    print("policies / dane-only per round:", " ".join(f"{r:.3f}" for r in ratios))
    print(f"policies / dane-only (geometric mean): {math.prod(ratios) ** (1 / len(ratios)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
