"""Issue 16's soak: faults all through a large scan, and nothing lost or doubled.

On an internet-profile testbed whose DNS path loses a further share of the
queries (``testbed up --dns-loss``), one scan with several workers meets:

- the testbed's Unbound restarted (SIGKILL, then a new one with an empty
  cache) ``--restarts`` times, evenly over the expected scan time;
- one worker process killed with SIGKILL in the middle of the scan: the
  scan ends as failed, and ``--resume`` finishes it.

Then the dataset is checked against truth.parquet: every domain exactly
once, every verdict equal. The testbed's retry policy is the scanner's
default, so the tail of the scan includes greylisting windows.

    .venv/bin/python benchmarks/bench_soak.py --domains 1000000 --dir /tmp/bench-soak

The testbed folder is kept (and reused when it is up with the same domain
count and loss) unless --down is given.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import duckdb
from testbeds import internet_testbed

from testbed.cli import PROCESS_FILE, restart_unbound

NET = 231


def scan_argv(state: dict[str, Any], output: Path, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "scanner.cli", state["domains_file"], "-o", str(output),
        "--resolver", state["resolver"], "--bogus-probe", state["bogus_probe"],
        "--ehlo-name", "scanner.danescan.test", "--rate", str(args.rate),
        "--workers", str(args.workers), "-q", *state.get("scan_args", []),
    ]  # fmt: skip


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def unbound_pid(directory: Path) -> int:
    return int(json.loads((directory / PROCESS_FILE).read_text())["unbound"]["pid"])


def faults(directory: Path, scan: subprocess.Popen[str], args: argparse.Namespace,
           log: list[str]) -> None:  # fmt: skip
    """Restart Unbound ``args.restarts`` times and kill one worker, on a schedule."""
    expected = args.domains / args.rate
    restarts = [expected * (i + 1) / (args.restarts + 1) for i in range(args.restarts)]
    kill_at = expected * 0.6
    events = sorted([(t, "restart") for t in restarts] + [(kill_at, "kill")])
    started = time.monotonic()
    for at, what in events:
        while time.monotonic() - started < at:
            if scan.poll() is not None:
                return
            time.sleep(0.2)
        now = time.monotonic() - started
        if what == "restart":
            os.kill(unbound_pid(directory), signal.SIGKILL)
            time.sleep(1)
            restart_unbound(directory)
            log.append(f"{now:.0f} s: Unbound killed, a new one started with an empty cache")
        else:
            # The workers, not multiprocessing's resource tracker (also a child).
            workers = [p for p in children(scan.pid) if b"spawn_main" in _cmdline(p)]
            if workers:
                os.kill(workers[0], signal.SIGKILL)
                log.append(f"{now:.0f} s: worker {workers[0]} killed with SIGKILL")


def check(state: dict[str, Any], output: Path) -> dict[str, Any]:
    con = duckdb.connect()
    rows, distinct = con.execute(
        f"SELECT count(*), count(DISTINCT domain) FROM '{output}/part-*.parquet'"
    ).fetchone() or (0, 0)
    wrong = con.execute(
        f"""SELECT count(*) FROM '{state["truth_file"]}' AS want
        FULL OUTER JOIN '{output}/part-*.parquet' AS got USING (domain)
        WHERE want.verdict IS DISTINCT FROM got.verdict"""
    ).fetchone()
    transient = con.execute(
        f"SELECT count(*) FILTER (WHERE transient) FROM '{output}/part-*.parquet'"
    ).fetchone()
    return {
        "rows": rows,
        "distinct_domains": distinct,
        "verdicts_differing_from_truth": wrong[0] if wrong else None,
        "transient_rows": transient[0] if transient else None,
    }


def outcome(output: Path, name: str, code: int, started: float, stderr: str) -> dict[str, Any]:
    """One run's exit, time and manifest; its whole stderr is kept beside the dataset."""
    (output.parent / f"{output.name}.{name}.stderr").write_text(stderr)
    manifest_file = output / "manifest.json"
    return {
        "exit": code,
        "seconds": round(time.monotonic() - started),
        "stderr": stderr.strip()[-300:],
        "manifest": json.loads(manifest_file.read_text()) if manifest_file.exists() else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--domains", type=int, default=1_000_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bench-soak"))
    parser.add_argument("--dns-loss", type=float, default=0.02)
    parser.add_argument("--rate", type=float, default=5000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--down", action="store_true", help="take the testbed down afterwards")
    args = parser.parse_args()
    started = time.monotonic()
    state = internet_testbed(args.dir, net=NET, domains=args.domains, dns_loss=args.dns_loss)
    print(f"testbed up in {time.monotonic() - started:.0f} s", file=sys.stderr)
    output = args.dir / f"soak-{int(time.time())}"
    log: list[str] = []
    started = time.monotonic()
    scan = subprocess.Popen(scan_argv(state, output, args), stderr=subprocess.PIPE, text=True)
    chaos = threading.Thread(target=faults, args=(args.dir, scan, args, log))
    chaos.start()
    _, first_err = scan.communicate()
    chaos.join()
    first = outcome(output, "scan", scan.returncode, started, first_err)
    started = time.monotonic()
    resumed = subprocess.run(
        [*scan_argv(state, output, args), "--resume"], capture_output=True, text=True, check=False
    )
    second = outcome(output, "resume", resumed.returncode, started, resumed.stderr)
    result = {"domains": args.domains, "dns_loss": args.dns_loss, "faults": log,
              "scan": first, "resume": second, "check": check(state, output)}  # fmt: skip
    print(json.dumps(result, indent=2, default=str))
    if args.down:
        subprocess.run([sys.executable, "-m", "testbed.cli", "down", "--dir", str(args.dir)],
                       check=True, stdout=subprocess.DEVNULL)  # fmt: skip


if __name__ == "__main__":
    main()
