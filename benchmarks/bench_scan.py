"""End-to-end benchmark of `scan` against a testbed (issue 6).

Runs the real command line, ``scan DOMAINS -o DIR --workers W --rate R``,
against a testbed that is already up (``--testbed D``, its testbed.json), and
measures while it runs:

- domains/s sustained: concluded domains over the wall-clock time from the
  first to the last part file's rows (the progress counters are per process;
  the dataset is the ground truth), and over the whole run;
- peak memory: the largest sum of resident set sizes over the scan's whole
  process tree (parent and worker processes), sampled every 0.2 s from
  /proc, so that memory that grows with the input shows;
- CPU seconds of the scan's processes (user + system, from /proc/<pid>/stat
  of the live tree plus getrusage of reaped children).

The testbed shares the two cores, as the issue asks. ``--sizes`` scans the
first N domains of the testbed for each N in turn, against the same
resolver and hosts, and compares each peak with the smallest scan's: memory
must not grow with the input (issue 6: at most 15% above the 100,000-domain
peak). Unbound is restarted before each scan so that every scan meets a
cold cache, as a real scan does.

    .venv/bin/python benchmarks/bench_scan.py --testbed /tmp/tb100k --workers 2
    .venv/bin/python benchmarks/bench_scan.py --testbed /tmp/tb1m --sizes 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import duckdb
from procstat import Usage, busy_share

from testbed.cli import restart_unbound

PAGE = os.sysconf("SC_PAGE_SIZE")
TICKS = os.sysconf("SC_CLK_TCK")


def tree(root: int) -> list[int]:
    """``root`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry))
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def rss_and_cpu(pids: list[int]) -> tuple[int, float]:
    rss, cpu = 0, 0.0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm") as handle:
                rss += int(handle.read().split()[1]) * PAGE
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            cpu += (int(fields[11]) + int(fields[12])) / TICKS
        except OSError:
            continue
    return rss, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testbed", type=Path, help="a running testbed's folder")
    parser.add_argument(
        "--domains", type=int, default=100_000, help="without --testbed: bring one up of N"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=float, default=100_000.0)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument(
        "--sizes", type=int, nargs="+", help="scan the first N domains, for each N in turn"
    )
    parser.add_argument(
        "--warm", action="store_true", help="keep Unbound's cache (default: restart it)"
    )
    args = parser.parse_args()
    if args.testbed is not None and args.sizes:
        return compare_sizes(args, args.testbed)
    if args.testbed is not None:
        return measure(args, args.testbed)
    directory = Path(tempfile.mkdtemp(prefix="danescan-bench-scan-tb-"))
    up = [sys.executable, "-m", "testbed.cli", "up", "--domains", str(args.domains),
          "--dir", str(directory), "--net", "93", "--no-ipv6", "--no-postfix"]  # fmt: skip
    subprocess.run(up, check=True, stdout=subprocess.DEVNULL)
    try:
        return measure(args, directory)
    finally:
        subprocess.run([sys.executable, "-m", "testbed.cli", "down", "--dir", str(directory)],
                       check=False, stdout=subprocess.DEVNULL)  # fmt: skip


def compare_sizes(args: argparse.Namespace, testbed: Path) -> int:
    state = json.loads((testbed / "testbed.json").read_text())
    results = []
    with tempfile.TemporaryDirectory(prefix="danescan-bench-sizes-") as tmp:
        for size in sorted(args.sizes):
            head = Path(tmp) / f"domains-{size}.txt"
            with open(state["domains_file"]) as source, head.open("w") as sink:
                for count, line in enumerate(source):
                    if count >= size:
                        break
                    sink.write(line)
            if not args.warm:
                restart_unbound(testbed)
            result = run_scan(args, testbed, head, Path(tmp) / f"out-{size}")
            if result is None:
                return 1
            results.append(result)
            print(json.dumps(result, indent=2), flush=True)
    base = results[0]["peak_rss_mib_all_processes"]
    print(
        "| domains | sustained/s | overall/s | peak MiB | vs smallest | scan CPU ms/domain "
        "| Unbound CPU ms/domain | NSD CPU ms/domain | machine busy |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        peak, cpu, domains = (
            r["peak_rss_mib_all_processes"],
            r["cpu_seconds_scan_processes"],
            r["domains"],
        )
        print(
            f"| {domains:,} | {r['domains_per_second_sustained']} "
            f"| {r['domains_per_second_overall']} | {peak:.0f} | {peak / base - 1:+.1%} "
            f"| {cpu / domains * 1e3:.2f} | {r['cpu_seconds_unbound'] / domains * 1e3:.2f} "
            f"| {r['cpu_seconds_nsd'] / domains * 1e3:.2f} | {r['machine_busy']:.0%} |"
        )
    return 0


def measure(args: argparse.Namespace, testbed: Path) -> int:
    state = json.loads((testbed / "testbed.json").read_text())
    output = args.output or Path(tempfile.mkdtemp(prefix="danescan-bench-scan-")) / "results"
    result = run_scan(args, testbed, Path(state["domains_file"]), output)
    if result is None:
        return 1
    print(json.dumps(result, indent=2))
    return 0


def run_scan(
    args: argparse.Namespace,
    testbed: Path,
    domains: Path,
    output: Path,
    extra: tuple[str, ...] = (),
) -> dict[str, Any] | None:
    """One scan of ``domains`` with ``extra`` options, measured (see the module)."""
    state = json.loads((testbed / "testbed.json").read_text())
    argv = [
        sys.executable, "-m", "scanner.cli", str(domains), "-o", str(output),
        "--resolver", state["resolver"], "--bogus-probe", state["bogus_probe"],
        "--ehlo-name", "scanner.danescan.test", "--rate", str(args.rate),
        "--workers", str(args.workers), "--min-interval", "0", "--retry-backoff", "0.1",
        "--timeout", "5", "-q", *state["scan_args"], *extra,
    ]  # fmt: skip
    usage_before = Usage.now(testbed / "processes.json")
    started = time.monotonic()
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    peak_rss, last_cpu = 0, 0.0
    while proc.poll() is None:
        rss, cpu = rss_and_cpu(tree(proc.pid))
        peak_rss = max(peak_rss, rss)
        last_cpu = max(last_cpu, cpu)
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    assert proc.stderr is not None
    err = proc.stderr.read()
    usage_after = Usage.now(testbed / "processes.json")
    if proc.returncode != 0:
        print(err, file=sys.stderr)
        return None
    # RUSAGE_CHILDREN counts every child reaped so far (an earlier scan's
    # too): the difference is this scan's processes, reaped by poll() above.
    cpu = usage_after.children - usage_before.children
    first, last, rows = duckdb.connect().execute(
        f"SELECT min(scanned_at), max(scanned_at), count(*) FROM '{output}/part-*.parquet'"
    ).fetchone() or (None, None, 0)
    span = (last - first).total_seconds() if first and last else elapsed
    result = {
        "domains": rows,
        "workers": args.workers,
        "wall_seconds": round(elapsed, 1),
        "admission_span_seconds": round(span, 1),
        "domains_per_second_sustained": round(rows / span) if span else None,
        "domains_per_second_overall": round(rows / elapsed),
        "peak_rss_mib_all_processes": round(peak_rss / 2**20, 1),
        "cpu_seconds_scan_processes": round(cpu, 1),
        # The testbed's share of the two cores while the scan ran.
        "cpu_seconds_unbound": round(usage_after.unbound - usage_before.unbound, 1),
        "cpu_seconds_nsd": round(usage_after.nsd - usage_before.nsd, 1),
        "cpu_seconds_relay": round(usage_after.relay - usage_before.relay, 1),
        "machine_busy": round(busy_share(usage_before, usage_after), 3),
        "load_average": os.getloadavg(),
        "command": " ".join(argv),
    }
    return result


if __name__ == "__main__":
    raise SystemExit(main())
