"""What the internet profile's delay layer costs: CPU per query and memory of
testbed/relay.py, side by side with NSD answering the same queries directly,
and (when Debian's dnsdist is installed) dnsdist delaying them instead.

dnsperf sends the same queries at the same rate three (or four) ways, one
after the other, and /proc tells each server's CPU over the run:

- NSD alone: the queries straight to NSD (the floor: what NSD itself costs);
- relay, delays on: through the busiest healthy operator of the testbed, so
  every answer is held back for that operator's round-trip time;
- relay, delays off: a second relay process serving the same operator with
  its delays set to 0, on a spare address (what forwarding alone costs);
- dnsdist (optional): one listener forwarding to NSD with DelayResponseAction
  of the operator's median, dnsdist's own way to delay.

    .venv/bin/python benchmarks/bench_relay.py [--testbed D] [--rate 4000] [--seconds 10]

Without --testbed it brings up a 20,000-domain internet testbed on net 87 and
takes it down at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from benchmarks.procstat import group_cpu  # noqa: E402
from testbed import cli, relay  # noqa: E402
from testbed.profile import Operator, Profile  # noqa: E402

NET = 87
SPARE_ADDRESS = "127.{net}.252.250"  # a listener for the undelayed relay and dnsdist


@dataclass(frozen=True)
class Run:
    name: str
    sent: int
    completed: int
    cpu: float  # seconds of the server under test
    avg_latency_ms: float
    rss_mib: float

    @property
    def us_per_query(self) -> float:
        return 1e6 * self.cpu / self.completed if self.completed else float("nan")

    def row(self) -> str:
        return (
            f"{self.name:<22} {self.completed:>8,} of {self.sent:>8,}  "
            f"{self.us_per_query:>7.1f} us/query  {self.avg_latency_ms:>7.1f} ms avg  "
            f"{self.rss_mib:>6.1f} MiB RSS"
        )


def dnsperf(server: str, queries: Path, rate: int, seconds: int) -> tuple[int, int, float]:
    argv = ["dnsperf", "-s", server, "-d", str(queries), "-l", str(seconds), "-Q", str(rate),
            "-q", "20000", "-t", "5", "-c", "4"]  # fmt: skip
    done = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        check=True,
    )
    out = done.stdout

    def number(label: str) -> str:
        found = re.search(label + r":\s+([\d.]+)", out)
        assert found is not None, f"dnsperf printed no {label!r}"
        return found.group(1)

    latency = 1e3 * float(number(r"Average Latency \(s\)"))
    return int(number("Queries sent")), int(number("Queries completed")), latency


def rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    found = re.search(r"VmHWM:\s+(\d+) kB", status)
    return int(found.group(1)) / 1024 if found else float("nan")


def measure(name: str, pid: int, server: str, queries: Path, rate: int, seconds: int) -> Run:
    before = group_cpu(os.getpgid(pid))
    sent, completed, latency = dnsperf(server, queries, rate, seconds)
    time.sleep(0.5)  # the last delayed answers leave
    return Run(name, sent, completed, group_cpu(os.getpgid(pid)) - before, latency, rss_mib(pid))


@contextlib.contextmanager
def testbed(directory: Path | None, domains: int) -> Iterator[Path]:
    if directory is not None:
        yield directory
        return
    made = Path(tempfile.mkdtemp(prefix="bench-relay-"))
    made.chmod(0o755)
    cli.up(
        made,
        domains=domains,
        seed=1,
        net=NET,
        with_postfix=False,
        ipv6=False,
        profile=Profile.INTERNET,
        out=lambda line: print(line, file=sys.stderr),
    )
    try:
        yield made
    finally:
        cli.down(made)
        shutil.rmtree(made, ignore_errors=True)


@contextlib.contextmanager
def spare_relay(config: relay.RelayConfig, work: Path) -> Iterator[int]:
    """A second relay process with the given routes; yields its pid."""
    path = work / "relay-spare.json"
    ready = work / "relay-spare.ready"
    relay.write_config(path, config)
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed.relay", str(path), "--ready-file", str(ready)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the spare relay did not start")
            time.sleep(0.05)
        yield proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=10)


@contextlib.contextmanager
def dnsdist(address: str, upstream: str, delay_ms: int, work: Path) -> Iterator[int | None]:
    binary = shutil.which("dnsdist")
    if binary is None:
        yield None
        return
    conf = work / "dnsdist.conf"
    conf.write_text(
        'setSecurityPollSuffix("")\n'  # dnsdist would otherwise ask the internet for updates
        f"setLocal('{address}:53')\n"
        f"newServer({{address='{upstream}:53', checkName='.', checkType='SOA'}})\n"
        f"addResponseAction(AllRule(), DelayResponseAction({delay_ms}))\n"
    )
    proc = subprocess.Popen(
        [binary, "--supervised", "--disable-syslog", "-C", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        time.sleep(3)
        yield proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--testbed", type=Path, help="an internet testbed already up")
    parser.add_argument("--domains", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=4000, help="queries per second")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args(argv)
    with testbed(args.testbed, args.domains) as directory, tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        state = json.loads((directory / cli.STATE_FILE).read_text())
        if state.get("profile") != Profile.INTERNET.value:
            print("bench_relay: the testbed must have the internet profile", file=sys.stderr)
            return 2
        operators = json.loads(Path(state["operators_file"]).read_text())
        busiest = max(
            (op for op in operators if op["kind"] == "healthy"), key=lambda op: op["zones"]
        )
        queries = work / "queries.txt"
        names = busiest["zone_names"]
        queries.write_text("".join(f"{names[i % len(names)]} SOA\n" for i in range(200_000)))
        nsd_address = str(state["auth_server"]).rsplit(":", 1)[0]
        table = json.loads((directory / cli.PROCESS_FILE).read_text())
        relay_pid, nsd_pid = int(table["relay"]["pid"]), int(table["nsd"]["pid"])
        spare = SPARE_ADDRESS.format(net=state["net"])
        print(
            f"operator {busiest['name']}: median {busiest['median_ms']} ms, sigma "
            f"{busiest['sigma']}, loss {busiest['loss']}; {args.rate} queries/s for "
            f"{args.seconds} s"
        )
        runs = [
            measure("NSD alone", nsd_pid, nsd_address, queries, args.rate, args.seconds),
            measure(
                "relay, delays on",
                relay_pid,
                busiest["address"],
                queries,
                args.rate,
                args.seconds,
            ),
        ]
        fields = {k: v for k, v in busiest.items() if k not in ("zones", "zone_names")}
        still = Operator.from_json({**fields, "address": spare, "median_ms": 0, "max_ms": 0})
        route = relay.Route(still, (nsd_address, 53))
        with spare_relay(relay.RelayConfig(routes=(route,)), work) as pid:
            runs.append(measure("relay, delays off", pid, spare, queries, args.rate, args.seconds))
        with dnsdist(spare, nsd_address, round(busiest["median_ms"]), work) as pid:
            if pid is None:
                print("dnsdist not installed: its row is left out")
            else:
                runs.append(
                    measure("dnsdist, fixed delay", pid, spare, queries, args.rate, args.seconds)
                )
        for run in runs:
            print(run.row())
        print(
            "each row is the CPU of the process under test alone: through the relay, "
            "NSD's own row is spent as well"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
