"""Benchmark of the testbed's STARTTLS responder (RFC 5321, RFC 3207, RFC 8446).

Measures, against ``python -m testbed.responder`` on this machine:

- full handshakes per second (banner, EHLO, STARTTLS, TLS handshake without
  session resumption, QUIT) with ECDSA P-256 and RSA-2048 chains, TLS 1.3 and
  1.2, from one asyncio client process with bounded concurrency, and the
  responder's CPU time per handshake (client and responder share the cores);
- cold handshakes: one per listener, each listener with its own chain, so every
  handshake also builds that chain's SSL context;
- startup: time until a responder with N listeners is bound and ready, and its
  memory.

Run as root (port 25): ``.venv/bin/python benchmarks/bench_responder.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import uvloop

from testbed.model import Behavior, Listener
from testbed.pki import Issued, KeyType, Pki, write_chain
from testbed.procs import TestbedError, ensure_free
from testbed.responder_config import write_config

_READY_TIMEOUT = 120.0
_CLIENT_TIMEOUT = 30.0


@dataclass(frozen=True, slots=True)
class Result:
    label: str
    handshakes: int
    failures: int
    seconds: float
    server_cpu_seconds: float

    @property
    def rate(self) -> float:
        return self.handshakes / self.seconds

    def line(self) -> str:
        cpu_us = 1e6 * self.server_cpu_seconds / max(self.handshakes, 1)
        return (
            f"{self.label:<28} {self.handshakes:>6} ok {self.failures:>3} failed "
            f"{self.seconds:7.2f} s {self.rate:8.0f}/s  responder CPU {cpu_us:6.0f} us/handshake"
        )


def _chain(pki: Pki, kind: KeyType, name: str, root: Issued, inter: Issued) -> list[Issued]:
    return [pki.leaf([name], inter, kind, key_label=name), inter, root]


def make_pki(pki_dir: Path, cold: int) -> None:
    """Chains ``ecdsa`` and ``rsa`` (leaf, intermediate, root) and ``cold-<i>`` (ECDSA)."""
    pki = Pki(seed=7, now=dt.datetime.now(dt.UTC))
    for kind, chain_id in ((KeyType.ECDSA, "ecdsa"), (KeyType.RSA, "rsa")):
        root = pki.ca(f"Bench Root {chain_id}", kind)
        inter = pki.ca(f"Bench Intermediate {chain_id}", kind, issuer=root)
        write_chain(pki_dir, chain_id, _chain(pki, kind, f"mx.{chain_id}.bench.test", root, inter))
    root = pki.ca("Bench Root ecdsa", KeyType.ECDSA)
    inter = pki.ca("Bench Intermediate ecdsa", KeyType.ECDSA, issuer=root)
    for i in range(cold):
        name = f"mx{i}.cold.bench.test"
        write_chain(pki_dir, f"cold-{i}", _chain(pki, KeyType.ECDSA, name, root, inter))


def free_addresses(count: int) -> list[str]:
    """``count`` loopback addresses in a random 127.B.0.0/16 where port 25 is free."""
    base = random.randrange(100, 201)
    found: list[str] = []
    for index in range(256 * 254):
        address = f"127.{base}.{index // 254}.{index % 254 + 1}"
        try:
            ensure_free(address, 25)
        except TestbedError:
            continue
        found.append(address)
        if len(found) == count:
            return found
    raise TestbedError(f"fewer than {count} free addresses in 127.{base}.0.0/16")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@contextmanager
def responder(
    workdir: Path, listeners: Sequence[Listener], pki_dir: Path, port: int
) -> Iterator[tuple[int, dict[str, float]]]:
    """A running responder: yields its PID and ready-file contents; stops it after."""
    config = workdir / "responder.json"
    ready = workdir / "responder.ready"
    ready.unlink(missing_ok=True)
    write_config(config, listeners, pki_dir=pki_dir, port=port)
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed.responder", str(config), "--ready-file", str(ready)],
        stdout=subprocess.DEVNULL,
    )
    try:
        while not ready.exists():
            if proc.poll() is not None:
                raise TestbedError(f"responder exited with status {proc.returncode}")
            if time.perf_counter() - started > _READY_TIMEOUT:
                raise TestbedError("responder not ready in time")
            time.sleep(0.01)
        status = json.loads(ready.read_text())
        status["wall_seconds"] = time.perf_counter() - started
        yield proc.pid, status
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def _reply(reader: asyncio.StreamReader) -> bytes:
    """One (possibly multi-line) SMTP reply; its code."""
    while True:
        line = await reader.readline()
        if len(line) < 4:
            raise ConnectionError(f"bad reply line {line!r}")
        if line[3:4] != b"-":
            return line[:3]


async def handshake(address: str, port: int, sni: str, context: ssl.SSLContext) -> None:
    reader, writer = await asyncio.open_connection(address, port)
    try:
        if await _reply(reader) != b"220":
            raise ConnectionError("no 220 banner")
        writer.write(b"EHLO bench.danescan.test\r\n")
        if await _reply(reader) != b"250":
            raise ConnectionError("EHLO refused")
        writer.write(b"STARTTLS\r\n")
        if await _reply(reader) != b"220":
            raise ConnectionError("STARTTLS refused")
        await writer.start_tls(context, server_hostname=sni)
        writer.write(b"QUIT\r\n")
        await _reply(reader)
    finally:
        writer.transport.abort()


async def _run(
    targets: Sequence[tuple[str, str]], port: int, concurrency: int, context: ssl.SSLContext
) -> tuple[int, int, float]:
    """Handshakes to each (address, SNI) of ``targets`` in order; (ok, failed, seconds)."""
    queue = iter(targets)
    ok = failed = 0

    async def worker() -> None:
        nonlocal ok, failed
        for address, sni in queue:
            try:
                async with asyncio.timeout(_CLIENT_TIMEOUT):
                    await handshake(address, port, sni, context)
                ok += 1
            except (OSError, ssl.SSLError, TimeoutError):
                failed += 1

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return ok, failed, time.perf_counter() - started


def client_context(version: ssl.TLSVersion) -> ssl.SSLContext:
    # A scanner-like client: no verification here, the chain is checked elsewhere.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.minimum_version = context.maximum_version = version
    return context


def measure(
    pid: int,
    label: str,
    targets: Sequence[tuple[str, str]],
    port: int,
    concurrency: int,
    version: ssl.TLSVersion,
) -> Result:
    before = _cpu_seconds(pid)
    ok, failed, seconds = uvloop.run(_run(targets, port, concurrency, client_context(version)))
    return Result(label, ok, failed, seconds, _cpu_seconds(pid) - before)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--handshakes", type=int, default=3000, help="per warm measurement")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--cold", type=int, default=1000, help="listeners with their own chain")
    parser.add_argument("--startup", type=int, default=18000, help="listeners in startup test")
    parser.add_argument("--port", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=3, help="runs per warm measurement")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="bench-responder-") as tmp:
        workdir = Path(tmp)
        pki_dir = workdir / "pki"
        pki_dir.mkdir()
        make_pki(pki_dir, args.cold)
        ec_address, rsa_address, *cold_addresses = free_addresses(2 + args.cold)
        listeners = [
            Listener(ec_address, Behavior.STARTTLS, {}, "ecdsa"),
            Listener(rsa_address, Behavior.STARTTLS, {}, "rsa"),
        ] + [
            Listener(address, Behavior.STARTTLS, {f"mx{i}.cold.bench.test": f"cold-{i}"}, "ecdsa")
            for i, address in enumerate(cold_addresses)
        ]
        print(f"# {os.cpu_count()} cores, Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}")
        print(f"# concurrency {args.concurrency}; client and responder on the same machine")
        with responder(workdir, listeners, pki_dir, args.port) as (pid, _):
            n = args.handshakes
            runs = [
                ("ECDSA P-256, TLS 1.3", ec_address, "mx.ecdsa.bench.test", ssl.TLSVersion.TLSv1_3),
                ("RSA-2048, TLS 1.3", rsa_address, "mx.rsa.bench.test", ssl.TLSVersion.TLSv1_3),
                ("ECDSA P-256, TLS 1.2", ec_address, "mx.ecdsa.bench.test", ssl.TLSVersion.TLSv1_2),
                ("RSA-2048, TLS 1.2", rsa_address, "mx.rsa.bench.test", ssl.TLSVersion.TLSv1_2),
            ]
            # The cores are shared with whatever else runs: repeat to show the spread.
            for label, address, sni, version in runs:
                targets = [(address, sni)] * n
                for _ in range(args.repeat):
                    result = measure(pid, label, targets, args.port, args.concurrency, version)
                    print(result.line())
            cold_targets = [
                (address, f"mx{i}.cold.bench.test") for i, address in enumerate(cold_addresses)
            ]
            label = "cold: new chain each, 1.3"
            result = measure(
                pid, label, cold_targets, args.port, args.concurrency, ssl.TLSVersion.TLSv1_3
            )
            print(result.line())
        startup_listeners = [
            Listener(address, Behavior.STARTTLS, {}, "ecdsa")
            for address in free_addresses(args.startup)
        ]
        with responder(workdir, startup_listeners, pki_dir, args.port) as (pid, status):
            print(
                f"startup: {args.startup} listeners bound in {status['startup_seconds']:.2f} s, "
                f"ready {status['wall_seconds']:.2f} s after exec, RSS {_rss_mb(pid):.0f} MB"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
