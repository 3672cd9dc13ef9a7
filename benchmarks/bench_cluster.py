"""Issue 18's benchmark: what running on Dask costs. The same scan of the same
internet-profile testbed, side by side in one command:

- ``--workers 2``: two processes of our own, each its shard;
- ``--cluster local:2``: two Dask workers (and a scheduler in the scan's
  process), the input split into tasks, every handshake routed to the
  worker that owns its address.

Each scan meets a cold Unbound (restarted before it). Reported per scan
(bench_scan.run_scan): domains/s over the rows' admission span, peak memory
of all its processes, CPU per domain; for the cluster also the peak memory
of the scan's own process (client and scheduler) and of the largest worker,
and the route's counts from the manifest.

    .venv/bin/python benchmarks/bench_cluster.py --domains 1000000 --rate 5000 \\
        --dir /tmp/bench-flow

The testbed folder is kept (and reused when it is up with the same domain
count) unless --down is given; it is bench_flow's (the same net and seed).

``--rounds 2`` scans in the order workers, cluster, cluster, workers (each
round reverses the one before): a drift of the machine or of the testbed
over the run then weighs on both paths alike, and the ratio reported is the
geometric mean of the rounds' ratios.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench_scan import PAGE, run_scan, tree
from testbeds import add_testbed_options, internet_testbed

from testbed.cli import restart_unbound

NET = 85
ONE_ATTEMPT = ("--retries", "0")  # greylisting windows would set the tail, not the scanner


class RolePeaks:
    """Peak RSS of the scan's own process and of its largest descendant,
    sampled while a scan runs (run_scan measures the whole tree)."""

    def __init__(self) -> None:
        self.root = 0
        self.largest_child = 0
        self._stop = threading.Event()

    def watch(self, name: str) -> threading.Thread:
        def loop() -> None:
            while not self._stop.is_set():
                root = _scan_process(name)
                if root is not None:
                    self.root = max(self.root, _rss(root))
                    children = [p for p in tree(root) if p != root]
                    self.largest_child = max([self.largest_child, *map(_rss, children)])
                time.sleep(0.5)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


def _scan_process(output: str) -> int | None:
    """The scan process writing ``output`` (found by its command line)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"scanner.cli" in argv and output.encode() in argv:
            return int(entry.name)
    return None


def scan(
    args: argparse.Namespace, label: str, work: Path, domains: Path, extra: tuple[str, ...]
) -> dict[str, Any]:
    restart_unbound(args.dir)
    # A folder per scan: with --rounds, each path scans more than once.
    output = work / f"{label.replace(' ', '-')}-{len(list(work.iterdir()))}"
    peaks = RolePeaks()
    watcher = peaks.watch(str(output))
    try:
        result = run_scan(args, args.dir, domains, output, (*ONE_ATTEMPT, *extra))
    finally:
        peaks.stop()
        watcher.join()
    if result is None:
        raise SystemExit(f"bench_cluster: the {label} scan failed")
    manifest = json.loads((output / "manifest.json").read_text())
    result |= {
        "label": label,
        "peak_rss_mib_scan_process": round(peaks.root / 2**20, 1),
        "peak_rss_mib_largest_child": round(peaks.largest_child / 2**20, 1),
        "handshakes": manifest["counts"]["work"].get("handshakes", {}),
        "dns": manifest["counts"]["work"].get("dns", {}),
        "cluster": manifest.get("cluster"),
    }
    print(json.dumps(result, indent=2), flush=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_testbed_options(parser)
    parser.add_argument(
        "--cluster-first", action="store_true", help="scan with the cluster first (order effects)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="pairs of scans, each in the other order"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-cluster-") as tmp:
        work = Path(tmp)
        state = internet_testbed(args.dir, net=NET, domains=args.domains, latency_scale=1.0)
        domains = Path(state["domains_file"])

        def run_local() -> dict[str, Any]:
            args.workers = 2
            return scan(args, "workers 2", work, domains, ())

        def run_cluster() -> dict[str, Any]:
            args.workers = 1  # the cluster's two workers are Dask's
            return scan(args, "cluster local 2", work, domains, ("--cluster", "local:2"))

        pairs: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for round_ in range(args.rounds):
            if (round_ % 2 == 1) != args.cluster_first:
                cluster, local = run_cluster(), run_local()
            else:
                local, cluster = run_local(), run_cluster()
            pairs.append((local, cluster))
    if args.down:
        subprocess.run([sys.executable, "-m", "testbed.cli", "down", "--dir", str(args.dir)],
                       check=False, stdout=subprocess.DEVNULL)  # fmt: skip
    print("| scan | domains | domains/s | peak MiB, all | scan process MiB | largest child MiB "
          "| scan CPU ms/domain | machine busy |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    ratios = []
    for local, cluster in pairs:
        for r in (local, cluster):
            print(
                f"| {r['label']} | {r['domains']:,} | {r['domains_per_second_sustained']:,} "
                f"| {r['peak_rss_mib_all_processes']:.0f} | {r['peak_rss_mib_scan_process']:.0f} "
                f"| {r['peak_rss_mib_largest_child']:.0f} "
                f"| {r['cpu_seconds_scan_processes'] * 1e3 / r['domains']:.2f} "
                f"| {r['machine_busy']:.0%} |"
            )
        ratios.append(
            cluster["domains_per_second_sustained"] / local["domains_per_second_sustained"]
        )
    print("cluster / workers per round:", " ".join(f"{r:.3f}" for r in ratios))
    print(f"cluster / workers (geometric mean): {math.prod(ratios) ** (1 / len(ratios)):.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
