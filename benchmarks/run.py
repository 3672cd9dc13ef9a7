"""`make bench`: run the benchmarks one after the other and print their results.

Each benchmark is a script of its own (``benchmarks/bench_*.py``) that can be
run alone with more options; this runner uses sizes that finish in minutes
on a 2-core machine. The figures quoted in benchmarks/RESULTS.md come from
the commands written next to them there. Benchmarks that need their own
testbed bring it up on a loopback net of their own and take it down.

    .venv/bin/python -m benchmarks.run [--only NAME ...] [--list]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> arguments; the order runs the cheap, self-contained ones first.
BENCHMARKS: dict[str, list[str]] = {
    "wire": ["--number", "2000", "--repeat", "3"],
    "match": ["--pairs", "20000", "--repeat", "3"],
    "responder": [],
    "tls_floor": ["--handshakes", "1000"],
    "handshake": [],
    "testbed_dns": ["--domains", "100000"],
    "relay": ["--domains", "20000", "--rate", "4000"],
    "resolve": ["--repeat", "3"],
    "scan": ["--domains", "100000", "--workers", "2"],
    "analysis": ["--domains", "1000000"],
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", choices=sorted(BENCHMARKS), default=None)
    parser.add_argument("--list", action="store_true", help="print the benchmarks and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, extra in BENCHMARKS.items():
            print(f"{name:12} benchmarks/bench_{name}.py {' '.join(extra)}")
        return 0
    failed = []
    for name in args.only or list(BENCHMARKS):
        command = [sys.executable, str(HERE / f"bench_{name}.py"), *BENCHMARKS[name]]
        print(f"\n=== {name}: {' '.join(command)}", flush=True)
        started = time.monotonic()
        status = subprocess.run(command, check=False).returncode
        print(f"=== {name}: exit {status} after {time.monotonic() - started:.0f} s", flush=True)
        if status != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
