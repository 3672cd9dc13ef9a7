"""Resource bounds of the handshake stage: 5,000 hosts that accept a connection
and never say a word cost bounded memory and all end by their deadline.

The hosts are 5,000 listening sockets on 127.98.x.y that never call accept():
the kernel completes each TCP handshake from the listen backlog, so the client
sees an open connection and waits for a banner that never comes.
"""

from __future__ import annotations

import asyncio
import resource
import socket
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterator

import pytest

from scanner.handshake.contact import ContactPolicy
from scanner.handshake.handshaker import Handshaker
from scanner.handshake.session import SessionSettings, client_context
from scanner.status import SmtpStatus
from tests.settings import polite_settings

HOSTS = 5000
PORT = 2526
DEADLINE = 2.0
CONNECTIONS = 1000
# Stated bound: Python heap growth while 1,000 sessions are open and 5,000
# results are cached (about 1 KB per cached result, a few KB per open session).
MEMORY_BOUND = 64 * 1024 * 1024


@pytest.fixture(scope="module")
def silent_hosts() -> Iterator[list[str]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    needed = HOSTS + CONNECTIONS + 500
    if hard < needed:
        pytest.skip(f"open-file limit {hard} is below the {needed} this test needs")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, needed), hard))
    sockets = []
    addresses = [f"127.98.{i // 250}.{i % 250 + 1}" for i in range(HOSTS)]
    try:
        for address in addresses:
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((address, PORT))
            sock.listen(4)
            sockets.append(sock)
        yield addresses
    finally:
        for sock in sockets:
            sock.close()
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_silent_hosts_bounded_memory_and_deadlines(silent_hosts: list[str]) -> None:
    settings = SessionSettings(
        ehlo_name="scanner.danescan.test",
        port=PORT,
        connect_timeout=DEADLINE,
        read_timeout=DEADLINE,
        session_deadline=DEADLINE,
    )
    polite = polite_settings(per_address=1, min_interval=0, max_connections=CONNECTIONS)

    async def scan() -> tuple[Counter[SmtpStatus], float, int]:
        # The silent hosts are on loopback, which is contacted only when allowed.
        allow = ContactPolicy.build(allow=("127.98.0.0/16",))
        handshaker = Handshaker(settings, polite, client_context(), policy=allow)
        tracemalloc.start()
        started = time.monotonic()
        try:
            results = await asyncio.gather(
                *(handshaker.handshake(a, f"mx{i}.silent.test") for i, a in enumerate(silent_hosts))
            )
        finally:
            await handshaker.aclose()
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return Counter(r.status for r in results), elapsed, peak

    statuses, elapsed, peak = asyncio.run(scan())
    assert statuses == {SmtpStatus.IO_TIMEOUT: HOSTS}
    # 5 waves of 1,000 connections, each ending at its deadline (10 s in all).
    waves = -(-HOSTS // CONNECTIONS)
    assert elapsed < waves * DEADLINE * 2 + 10, elapsed  # slack for a loaded machine
    print(f"{HOSTS} silent hosts: {elapsed:.1f} s, Python heap peak {peak / 2**20:.1f} MiB")
    assert peak < MEMORY_BOUND, f"{peak / 2**20:.1f} MiB"
