"""Issue 15's benchmark: does `scan --rate R` reach R on an internet that
answers slowly? The same scan on the same internet-profile testbed, side by
side in one command:

- flow control (today's scanner) with the testbed's latency;
- fixed caps (150 domains and 400 DNS queries in flight per process, the
  scanner before flow control) with the same latency;
- flow control on the same testbed brought up again with --latency-scale 0
  (same seed, net and zones: only the delays differ).

Each scan meets a cold Unbound. Reported per scan (bench_scan.run_scan):
domains/s over the rows' admission span, peak memory of the scan's process
tree, and CPU per domain of the scan, Unbound, NSD and the relay. With
--sizes, the flow-control scan also runs on the first N domains for each N,
to compare peak memory across input sizes.

    .venv/bin/python benchmarks/bench_flow.py --domains 1000000 --workers 2 --rate 5000 \\
        --dir /tmp/bench-flow --sizes 100000

The testbed folder is kept (and reused when it is up with the same domain
count) unless --down is given.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench_scan import run_scan
from testbeds import internet_testbed

from testbed.cli import restart_unbound

NET = 85
FIXED = ("--domains-in-flight", "150:150", "--queries-in-flight", "400:400")
# Greylisting windows of up to 25 minutes would make the tail of every scan
# that long; one attempt per server keeps the benchmark about throughput.
ONE_ATTEMPT = ("--retries", "0")


def scan(
    args: argparse.Namespace, label: str, domains: Path, work: Path, extra: tuple[str, ...]
) -> dict[str, Any]:
    restart_unbound(args.dir)
    result = run_scan(args, args.dir, domains, work / label, (*ONE_ATTEMPT, *extra))
    if result is None:
        raise SystemExit(f"bench_flow: the {label} scan failed")
    result["label"] = label
    print(json.dumps(result, indent=2), flush=True)
    return result


def head(source: Path, count: int, target: Path) -> Path:
    with source.open() as lines, target.open("w") as sink:
        for index, line in enumerate(lines):
            if index >= count:
                break
            sink.write(line)
    return target


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-flow"))
    parser.add_argument("--domains", type=int, default=100_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--sizes", type=int, nargs="*", default=[], help="also scan the first N")
    parser.add_argument("--down", action="store_true", help="take the testbed down at the end")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-flow-") as tmp:
        work = Path(tmp)
        state = internet_testbed(args.dir, net=NET, domains=args.domains, latency_scale=1.0)
        domains = Path(state["domains_file"])
        for size in args.sizes:
            subset = head(domains, size, work / f"domains-{size}.txt")
            results.append(scan(args, f"flow control, first {size:,}", subset, work, ()))
        results.append(scan(args, "flow control", domains, work, ()))
        results.append(scan(args, "fixed caps 150/400", domains, work, FIXED))
        internet_testbed(args.dir, net=NET, domains=args.domains, latency_scale=0.0)
        results.append(scan(args, "flow control, latency off", domains, work, ()))
    if args.down:
        subprocess.run([sys.executable, "-m", "testbed.cli", "down", "--dir", str(args.dir)],
                       check=False, stdout=subprocess.DEVNULL)  # fmt: skip
    print("| scan | domains | domains/s | peak MiB | scan CPU ms/domain | Unbound | NSD | relay "
          "| machine busy |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        per = 1e3 / r["domains"]
        print(
            f"| {r['label']} | {r['domains']:,} | {r['domains_per_second_sustained']:,} "
            f"| {r['peak_rss_mib_all_processes']:.0f} "
            f"| {r['cpu_seconds_scan_processes'] * per:.2f} | {r['cpu_seconds_unbound'] * per:.2f} "
            f"| {r['cpu_seconds_nsd'] * per:.2f} | {r['cpu_seconds_relay'] * per:.2f} "
            f"| {r['machine_busy']:.0%} |"
        )
    by_label = {r["label"]: r for r in results}
    slow, still = by_label["flow control"], by_label["flow control, latency off"]
    ratio = slow["domains_per_second_sustained"] / still["domains_per_second_sustained"]
    print(f"with latency / without: {ratio:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
