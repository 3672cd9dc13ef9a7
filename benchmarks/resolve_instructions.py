"""``bench_resolve.py --instructions``: instructions per query of a warm
scanner pass (the resolve stage, RFC 7672 section 2 lookups), counted by
valgrind's cachegrind in a child that runs bench_resolve.py
``--counted-pass``, as the difference between two pass lengths so that
start-up and imports cancel out.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

from resolve_pass import Bed, run_loop, scanner_pass, scanner_settings

from scanner.resolve.client import ResolverSettings
from testbed.procs import require_binary

_VALGRIND_TOTAL = re.compile(r"I\s+refs:\s+([\d,]+)")
# The child is the benchmark's own command line (its hidden --counted-pass),
# so it imports what it did before the split and counts compare with RESULTS.md.
_BENCH = Path(__file__).with_name("bench_resolve.py")


def counted_pass(bed: Bed, count: int) -> None:
    """The child under valgrind: a warm scanner pass over the first ``count``
    domains, gently (valgrind runs it some fifty times slower, and replies
    waiting in the socket must not time out)."""
    settings = ResolverSettings(servers=(bed.resolver,), max_in_flight=60, sockets=4, timeout=20.0)
    stats, _ = run_loop(scanner_pass(bed.domains()[:count], settings, 30))
    print(f"sent {stats.sent} timeouts {stats.timeouts}")


def instructions(args: argparse.Namespace, bed: Bed, domains: list[str]) -> None:
    """Instructions per query of a warm scanner pass, by valgrind: the
    difference between a pass of ``--limit`` domains and one three times as
    long, over the difference in queries sent."""
    valgrind = require_binary("valgrind", "valgrind")
    short = args.limit or 2_000
    settings = scanner_settings(args, bed)
    run_loop(scanner_pass(domains[: 3 * short], settings, args.concurrency))  # Unbound warm
    counted: list[tuple[int, int]] = []
    # Fixed so that two runs count alike: OpenBLAS (numpy, imported with the
    # pipeline) starts worker threads that spin for a while, some millions of
    # instructions more or less each run (5-10% of the difference counted),
    # and string hashing decides how dictionaries collide.
    env = os.environ | {"OPENBLAS_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    for count in (short, 3 * short):
        command = [
            valgrind, "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null",
            sys.executable, str(_BENCH), "--counted-pass", str(count), "--dir", str(bed.directory),
            "--reuse",
        ]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
        total = _VALGRIND_TOTAL.search(done.stderr)
        sent = re.search(r"sent (\d+) timeouts (\d+)", done.stdout)
        if total is None or sent is None:
            raise SystemExit(f"valgrind run failed:\n{done.stdout}\n{done.stderr[-2000:]}")
        if int(sent.group(2)):
            raise SystemExit(f"{sent.group(2)} timeouts under valgrind: the count is not clean")
        counted.append((int(total.group(1).replace(",", "")), int(sent.group(1))))
        print(f"{count:>6} domains: {counted[-1][1]:>6} queries, {counted[-1][0]:,} instructions")
    (small, small_sent), (large, large_sent) = counted
    per_query = (large - small) / (large_sent - small_sent)
    per_domain = (large - small) / (2 * short)
    print(f"scanner, warm: {per_query:,.0f} instructions per query, {per_domain:,.0f} per domain")
