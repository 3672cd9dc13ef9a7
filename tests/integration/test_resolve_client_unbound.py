"""The DNS client against a real Unbound serving local data on loopback.

Unbound answers from ``local-data`` (no recursion, no validation: AD stays
clear); the point is the transport and the codec against a real server,
including a TLSA RRset too big for 1232 octets, so TC over UDP, then TCP.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any

import pytest
import uvloop

from scanner.resolve.client import DnsClient, ResolverSettings
from scanner.resolve.managed import free_port
from scanner.resolve.message import Message, Mx, RdType
from scanner.resolve.wire import build_query, parse_message
from scanner.status import DnsOutcome, DnssecStatus
from scanner.tlsa import TlsaRecord

ZONE = "example.test."
BIG_TLSA = [TlsaRecord(3, 1, 2, bytes([i]) * 64) for i in range(30)]  # about 2,300 octets
LOCAL_DATA = [
    f"{ZONE} 3600 IN SOA ns.{ZONE} host.{ZONE} 1 3600 600 86400 120",
    f"{ZONE} 300 IN MX 10 mx1.{ZONE}",
    f"{ZONE} 300 IN MX 20 mx2.{ZONE}",
    f"mx1.{ZONE} 300 IN A 192.0.2.1",
    f"mx1.{ZONE} 300 IN AAAA 2001:db8::25",
    f"_25._tcp.mx1.{ZONE} 300 IN TLSA 3 1 1 {'ab' * 32}",
    f"alias.{ZONE} 600 IN CNAME mx1.{ZONE}",
    *(f"_25._tcp.big.{ZONE} 300 IN TLSA 3 1 2 {r.data.hex()}" for r in BIG_TLSA),
]

pytestmark = pytest.mark.skipif(shutil.which("unbound") is None, reason="needs unbound")


def wait_until_serving(port: int, deadline: float) -> None:
    query = build_query(1, ZONE, RdType.SOA)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                sock.sendto(query, ("127.0.0.1", port))
                if isinstance(parse_message(sock.recv(4096)), Message):
                    return
            except OSError:  # refused (not bound yet) or timed out
                time.sleep(0.05)
    raise TimeoutError(f"unbound did not answer on port {port}")


@pytest.fixture(scope="module")
def unbound(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("unbound")
    port = free_port()
    config = folder / "unbound.conf"
    lines = [
        "server:",
        f"  interface: 127.0.0.1@{port}",
        f'  directory: "{folder}"',
        '  username: ""',
        '  chroot: ""',
        '  pidfile: ""',
        "  use-syslog: no",
        f'  logfile: "{folder / "unbound.log"}"',
        "  do-daemonize: no",
        "  do-ip6: no",
        "  num-threads: 1",
        '  module-config: "iterator"',
        "  access-control: 127.0.0.0/8 allow",
        f'  local-zone: "{ZONE}" static',
        *(f'  local-data: "{record}"' for record in LOCAL_DATA),
        "remote-control:",
        "  control-enable: no",
    ]
    config.write_text("\n".join(lines) + "\n")
    subprocess.run(["unbound-checkconf", str(config)], check=True, capture_output=True)
    process = subprocess.Popen(["unbound", "-d", "-c", str(config)], stderr=subprocess.PIPE)
    try:
        wait_until_serving(port, time.monotonic() + 10)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=10)
        log = folder / "unbound.log"
        assert process.returncode == 0, (errors, log.read_text() if log.exists() else "")


Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Run:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    def runner(main: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=factory) as loop:
            loop.run(main)

    return runner


def test_queries_of_every_kind(unbound: str, run: Run) -> None:
    async def main() -> None:
        async with DnsClient(ResolverSettings(servers=(unbound,), timeout=1.0)) as client:
            mx, a, aaaa, tlsa, alias, nxdomain, nodata = await asyncio.gather(
                client.query(ZONE, RdType.MX),
                client.query(f"mx1.{ZONE}", RdType.A),
                client.query(f"MX1.{ZONE}", RdType.AAAA),
                client.query(f"_25._tcp.mx1.{ZONE}", RdType.TLSA),
                client.query(f"alias.{ZONE}", RdType.A),
                client.query(f"missing.{ZONE}", RdType.MX),
                client.query(f"mx1.{ZONE}", RdType.MX),
            )
            assert client.pending == 0
        assert set(mx.mx) == {Mx(10, f"mx1.{ZONE}"), Mx(20, f"mx2.{ZONE}")}
        assert (mx.outcome, mx.ttl, mx.tcp, mx.dnssec) == (
            DnsOutcome.ANSWER,
            300,
            False,
            DnssecStatus.INSECURE,  # local data is not validated
        )
        assert a.addresses == ("192.0.2.1",)
        assert aaaa.addresses == ("2001:db8::25",)
        assert tlsa.tlsa == (TlsaRecord(3, 1, 1, b"\xab" * 32),)
        # Unbound does not chase a CNAME out of local data: the answer ends at
        # the alias, so there is no A record at the end of the chain.
        assert (alias.outcome, alias.cnames, alias.addresses) == (
            DnsOutcome.NODATA,
            (f"mx1.{ZONE}",),
            (),
        )
        assert (nxdomain.outcome, nxdomain.ttl) == (DnsOutcome.NXDOMAIN, 120)
        assert (nodata.outcome, nodata.ttl) == (DnsOutcome.NODATA, 120)

    run(main())


def test_big_rrset_is_truncated_over_udp_and_complete_over_tcp(unbound: str, run: Run) -> None:
    async def main() -> None:
        async with DnsClient(ResolverSettings(servers=(unbound,), timeout=1.0)) as client:
            answer = await client.query(f"_25._tcp.big.{ZONE}", RdType.TLSA)
            assert client.pending == 0
            assert client.stats.tcp == 1
        assert (answer.outcome, answer.tcp) == (DnsOutcome.ANSWER, True)
        assert sorted(answer.tlsa) == BIG_TLSA

    run(main())


def test_many_concurrent_queries(unbound: str, run: Run) -> None:
    async def main() -> None:
        settings = ResolverSettings(servers=(unbound,), timeout=1.0, max_in_flight=100)
        async with DnsClient(settings) as client:
            answers = await asyncio.gather(
                *(client.query(f"mx1.{ZONE}", RdType.A) for _ in range(1000))
            )
            assert client.pending == 0
            assert client.stats.ignored == 0
        assert {(a.outcome, a.addresses) for a in answers} == {(DnsOutcome.ANSWER, ("192.0.2.1",))}

    run(main())
