"""Benchmark of the handshake stage (scanner.handshake.session) against sslyze and OpenSSL.

One full probe, as the scanner makes it per (address, SNI): connect, banner,
EHLO, STARTTLS, a full TLS handshake (no session resumption), the chain
captured, EHLO over TLS, QUIT (RFC 5321, RFC 3207, RFC 7672 section 8.1).

A dedicated testbed responder (``python -m testbed.responder``) serves port 25
on ``--addresses`` loopback addresses per key type in 127.<net>.0.0/16, one
set presenting an ECDSA P-256 chain and one an RSA-2048 chain (leaf,
intermediate, root). Every target is a distinct (address, SNI) pair, as in a
scan after the Handshaker's cache, and the same kind of target is given, in
one run and against the same responder, to:

- the scanner: ``run_session`` on uvloop in this process, ``--concurrency``
  sessions in flight;
- sslyze: its certificate-info scan with STARTTLS SMTP, through its Python
  API (connectivity test included: sslyze always makes one) in a separate
  interpreter (``--sslyze-python``; sslyze pins an older ``cryptography``
  than the project's, so it lives in a venv of its own), as many servers at
  once as the scanner's concurrency;
- a shell-style loop of ``openssl s_client -starttls smtp``, one at a time.

Reported per tool and key type: complete sessions per second (wall clock) and
CPU time per complete session from the client process's own accounting
(``time.process_time`` for the scanner and sslyze, ``RUSAGE_CHILDREN`` for
the openssl processes), and the responder's CPU per session. The responder
shares the machine's cores with the client, so wall-clock rates understate
what a client would do on its own; the client CPU time is the steady figure.

Run as root (port 25), from the repository root:
``.venv/bin/python benchmarks/bench_handshake.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import platform
import resource
import ssl
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import uvloop

from scanner.handshake.session import SessionResult, SessionSettings, client_context, run_session
from scanner.status import SmtpStatus
from testbed.model import Behavior, Listener
from testbed.pki import KeyType, Pki, write_chain
from testbed.procs import TestbedError, ensure_free
from testbed.responder import stop_responder
from testbed.responder_config import write_config

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SSLYZE_PYTHON = REPO / ".cache" / "sslyze-venv" / "bin" / "python"
EHLO_NAME = "bench.danescan-test.test"
KINDS = (KeyType.ECDSA, KeyType.RSA)
TOOLS = ("scanner", "sslyze", "openssl")
_READY_TIMEOUT = 60.0
# Per-session limits: generous for loopback, short enough that a stuck run ends.
_SETTINGS = SessionSettings(
    ehlo_name=EHLO_NAME,
    connect_timeout=10.0,
    read_timeout=10.0,
    session_deadline=30.0,
    quit_timeout=2.0,
)
_OPENSSL_TIMEOUT = 30.0

# Runs in sslyze's own interpreter: the targets as JSON on stdin, one JSON
# line on stdout. Only the scan is timed, not the imports.
_SSLYZE_DRIVER = """
import json, sys, time
from sslyze import (
    ProtocolWithOpportunisticTlsEnum, Scanner, ScanCommand, ScanCommandAttemptStatusEnum,
    ServerNetworkConfiguration, ServerNetworkLocation, ServerScanRequest, ServerScanStatusEnum,
)
job = json.load(sys.stdin)
requests = [
    ServerScanRequest(
        server_location=ServerNetworkLocation(hostname=sni, port=job["port"], ip_address=address),
        network_configuration=ServerNetworkConfiguration(
            tls_server_name_indication=sni,
            tls_opportunistic_encryption=ProtocolWithOpportunisticTlsEnum.SMTP,
            smtp_ehlo_hostname=job["ehlo_name"],
        ),
        scan_commands={ScanCommand.CERTIFICATE_INFO},
    )
    for address, sni in job["targets"]
]
cpu, wall = time.process_time(), time.perf_counter()
scanner = Scanner(concurrent_server_scans_limit=job["concurrency"])
scanner.queue_scans(requests)
ok = failed = 0
errors = {}
for result in scanner.get_results():
    attempt = result.scan_result.certificate_info if result.scan_result else None
    if (
        result.scan_status == ServerScanStatusEnum.COMPLETED
        and attempt is not None
        and attempt.status == ScanCommandAttemptStatusEnum.COMPLETED
        and attempt.result.certificate_deployments[0].received_certificate_chain
    ):
        ok += 1
    else:
        failed += 1
        why = str(result.connectivity_error_trace or (attempt.error_reason if attempt else ""))
        errors[why[:120]] = errors.get(why[:120], 0) + 1
from importlib.metadata import version
print(json.dumps({
    "ok": ok, "failed": failed, "seconds": time.perf_counter() - wall,
    "cpu_seconds": time.process_time() - cpu, "errors": errors,
    "version": f"sslyze {version('sslyze')}, nassl {version('nassl')}",
}))
"""


@dataclass(frozen=True, slots=True)
class Measurement:
    """One tool's run over one set of targets."""

    tool: str
    kind: KeyType
    ok: int
    failed: int
    seconds: float
    client_cpu_seconds: float
    responder_cpu_seconds: float
    note: str = ""

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def client_ms(self) -> float:
        return 1000.0 * self.client_cpu_seconds / max(self.ok, 1)

    @property
    def responder_ms(self) -> float:
        return 1000.0 * self.responder_cpu_seconds / max(self.ok, 1)

    def line(self) -> str:
        return (
            f"{self.tool:<8} {self.kind.value:<11} {self.ok:>6} ok {self.failed:>4} failed "
            f"{self.seconds:7.2f} s {self.rate:8.1f}/s  client CPU {self.client_ms:7.3f} ms  "
            f"responder CPU {self.responder_ms:6.3f} ms{'  ' + self.note if self.note else ''}"
        )


@dataclass(frozen=True, slots=True)
class Bench:
    """The responder's addresses per key type and how targets are named."""

    addresses: dict[KeyType, tuple[str, ...]]
    port: int
    responder_pid: int

    def targets(self, kind: KeyType, tag: str, count: int) -> list[tuple[str, str]]:
        """``count`` distinct (address, SNI) pairs; ``tag`` keeps runs apart."""
        addresses = self.addresses[kind]
        return [
            (addresses[i % len(addresses)], f"mx{i}.{tag}.{kind.value}.bench.test")
            for i in range(count)
        ]


# -- setup ----------------------------------------------------------------------


def make_pki(pki_dir: Path) -> None:
    """Chains ``ecdsa-p256`` and ``rsa-2048``: leaf (wildcard SAN), intermediate, root."""
    pki = Pki(seed=4, now=dt.datetime.now(dt.UTC))
    for kind in KINDS:
        root = pki.ca(f"Bench Root {kind.value}", kind)
        inter = pki.ca(f"Bench Intermediate {kind.value}", kind, issuer=root)
        name = f"*.{kind.value}.bench.test"
        leaf = pki.leaf([name], inter, kind, key_label=kind.value)
        write_chain(pki_dir, kind.value, [leaf, inter, root])


def free_addresses(net: int, third: int, count: int, port: int) -> tuple[str, ...]:
    """``count`` addresses 127.<net>.<third>.1... where ``port`` is free."""
    if not 1 <= count <= 254:
        raise ValueError("between 1 and 254 addresses per key type")
    addresses = tuple(f"127.{net}.{third}.{host}" for host in range(1, count + 1))
    for address in addresses:
        ensure_free(address, port)
    return addresses


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def running_responder(workdir: Path, listeners: Sequence[Listener], port: int) -> Iterator[int]:
    """The testbed responder serving ``listeners``; yields its PID, stops it after."""
    config, ready = workdir / "responder.json", workdir / "responder.ready"
    write_config(config, listeners, pki_dir=workdir / "pki", port=port)
    with (workdir / "responder.log").open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "testbed.responder", str(config), "--ready-file", str(ready)],
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + _READY_TIMEOUT
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise TestbedError(f"responder not ready; see {workdir / 'responder.log'}")
            time.sleep(0.02)
        yield proc.pid
    finally:
        stop_responder(proc)


# -- the three clients ------------------------------------------------------------


async def _scan(
    targets: Sequence[tuple[str, str]], concurrency: int, context: ssl.SSLContext
) -> list[SessionResult]:
    """``run_session`` over ``targets`` with at most ``concurrency`` in flight."""
    pending = iter(targets)
    results: list[SessionResult] = []

    async def worker() -> None:
        for address, sni in pending:
            results.append(await run_session(address, sni, _SETTINGS, context))

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return results


def measure_scanner(
    bench: Bench, kind: KeyType, targets: Sequence[tuple[str, str]], concurrency: int
) -> Measurement:
    context = client_context()  # built once per process, as the scanner does
    responder_before = _proc_cpu_seconds(bench.responder_pid)
    cpu, wall = time.process_time(), time.perf_counter()
    results = uvloop.run(_scan(targets, concurrency, context))
    seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
    statuses = Counter(result.status for result in results)
    complete = [r for r in results if r.status is SmtpStatus.TLS_OK and len(r.chain) == 3]
    errors = Counter(r.error for r in results if r.status is not SmtpStatus.TLS_OK)
    versions = Counter(r.tls_version for r in complete)
    return Measurement(
        "scanner",
        kind,
        ok=len(complete),
        failed=len(results) - len(complete),
        seconds=seconds,
        client_cpu_seconds=cpu_seconds,
        responder_cpu_seconds=_proc_cpu_seconds(bench.responder_pid) - responder_before,
        note=", ".join(
            [*(f"{v} {n}" for v, n in versions.most_common()), *map(str, errors.most_common(3))]
        )
        if statuses[SmtpStatus.TLS_OK] != len(results) or len(versions) != 1
        else "/".join(versions),
    )


def measure_sslyze(
    bench: Bench,
    kind: KeyType,
    targets: Sequence[tuple[str, str]],
    concurrency: int,
    python: Path,
) -> Measurement:
    job: dict[str, object] = {
        "targets": targets,
        "port": bench.port,
        "concurrency": concurrency,
        "ehlo_name": EHLO_NAME,
    }
    responder_before = _proc_cpu_seconds(bench.responder_pid)
    done = subprocess.run(
        [str(python), "-c", _SSLYZE_DRIVER],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        check=True,
    )
    responder_cpu = _proc_cpu_seconds(bench.responder_pid) - responder_before
    report = json.loads(done.stdout.strip().splitlines()[-1])
    return Measurement(
        "sslyze",
        kind,
        ok=report["ok"],
        failed=report["failed"],
        seconds=report["seconds"],
        client_cpu_seconds=report["cpu_seconds"],
        responder_cpu_seconds=responder_cpu,
        note=str(report["errors"]) if report["errors"] else report["version"],
    )


def measure_openssl(bench: Bench, kind: KeyType, targets: Sequence[tuple[str, str]]) -> Measurement:
    """One ``openssl s_client`` after the other; it closes when its stdin (empty) ends."""
    ok = failed = 0
    responder_before = _proc_cpu_seconds(bench.responder_pid)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = time.perf_counter()
    for address, sni in targets:
        done = subprocess.run(
            ["openssl", "s_client", "-starttls", "smtp", "-name", EHLO_NAME,
             "-connect", f"{address}:{bench.port}", "-servername", sni, "-showcerts"],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=False,
            timeout=_OPENSSL_TIMEOUT,
        )  # fmt: skip
        if done.returncode == 0 and done.stdout.count(b"-----BEGIN CERTIFICATE-----") == 3:
            ok += 1
        else:
            failed += 1
    seconds = time.perf_counter() - wall
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
    return Measurement(
        "openssl",
        kind,
        ok=ok,
        failed=failed,
        seconds=seconds,
        client_cpu_seconds=cpu,
        responder_cpu_seconds=_proc_cpu_seconds(bench.responder_pid) - responder_before,
    )


# -- the run --------------------------------------------------------------------


def _header(args: argparse.Namespace) -> list[str]:
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return [
        f"# {os.cpu_count()} cores, load average {load} at the start",
        f"# Python {platform.python_version()}, {ssl.OPENSSL_VERSION}, uvloop {version('uvloop')}",
        f"# {args.addresses} addresses per key type on 127.{args.net}.0.0/16, "
        f"concurrency {args.concurrency}, {args.sessions} scanner sessions, "
        f"{args.sslyze_hosts} sslyze hosts, {args.openssl_sessions} openssl sessions per run",
    ]


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _summary(results: Sequence[Measurement]) -> list[str]:
    """Median rate and CPU per tool and key type, and their ratios to the scanner's."""
    lines = []
    for kind in KINDS:
        medians: dict[str, tuple[float, float]] = {}
        for tool in TOOLS:
            runs = [m for m in results if m.tool == tool and m.kind is kind and m.ok]
            if runs:
                medians[tool] = (
                    _median([m.rate for m in runs]),
                    _median([m.client_ms for m in runs]),
                )
        scanner = medians.get("scanner")
        for tool, (rate, cpu) in medians.items():
            ratio = ""
            if scanner is not None and tool != "scanner":
                faster, leaner = scanner[0] / rate, cpu / scanner[1]
                ratio = f"  scanner vs {tool}: {faster:.1f}x the rate, 1/{leaner:.1f} the CPU"
            lines.append(
                f"summary {kind.value:<11} {tool:<8} median {rate:8.1f}/s  "
                f"client CPU {cpu:7.3f} ms/session{ratio}"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=5000, help="scanner sessions per run")
    parser.add_argument("--sslyze-hosts", type=int, default=200, help="sslyze servers per run")
    parser.add_argument("--openssl-sessions", type=int, default=200, help="s_client runs per run")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--addresses", type=int, default=200, help="per key type (1-254)")
    parser.add_argument("--net", type=int, default=77, help="use 127.NET.0.0/16")
    parser.add_argument("--port", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and key type")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated subset")
    parser.add_argument("--sslyze-python", type=Path, default=DEFAULT_SSLYZE_PYTHON)
    args = parser.parse_args(argv)
    tools = [tool for tool in args.tools.split(",") if tool]
    if unknown := set(tools) - set(TOOLS):
        parser.error(f"unknown tools: {sorted(unknown)}")
    if "sslyze" in tools and not args.sslyze_python.exists():
        print(
            f"# sslyze skipped: no {args.sslyze_python}; make it with `python3 -m venv "
            f"{args.sslyze_python.parents[1]} && {args.sslyze_python.parent}/pip install sslyze`"
        )
        tools.remove("sslyze")

    for line in _header(args):
        print(line, flush=True)
    results: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="bench-handshake-") as tmp:
        workdir = Path(tmp)
        (workdir / "pki").mkdir()
        make_pki(workdir / "pki")
        addresses = {
            kind: free_addresses(args.net, third, args.addresses, args.port)
            for third, kind in enumerate(KINDS, start=1)
        }
        listeners = [
            Listener(address, Behavior.STARTTLS, {}, kind.value)
            for kind in KINDS
            for address in addresses[kind]
        ]
        with running_responder(workdir, listeners, args.port) as pid:
            bench = Bench(addresses, args.port, pid)
            # Warm the responder's chain contexts and this process's imports.
            for kind in KINDS:
                measure_scanner(bench, kind, bench.targets(kind, "warm", 100), args.concurrency)
            # Tools alternate within each round, so a change in machine load hits all alike.
            for round_ in range(args.repeat):
                for kind in KINDS:
                    for tool in tools:
                        tag = f"{tool}{round_}"
                        if tool == "scanner":
                            targets = bench.targets(kind, tag, args.sessions)
                            result = measure_scanner(bench, kind, targets, args.concurrency)
                        elif tool == "sslyze":
                            targets = bench.targets(kind, tag, args.sslyze_hosts)
                            result = measure_sslyze(
                                bench, kind, targets, args.concurrency, args.sslyze_python
                            )
                        else:
                            targets = bench.targets(kind, tag, args.openssl_sessions)
                            result = measure_openssl(bench, kind, targets)
                        results.append(result)
                        print(result.line(), flush=True)
    for line in _summary(results):
        print(line)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"# load average {load} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
