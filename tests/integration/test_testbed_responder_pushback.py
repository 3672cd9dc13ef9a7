"""The testbed responder's pushback (greeting delay, greylisting, connection
limits per client, delayed and reset TLS handshakes; RFC 5321 sections 3.8
and 4.2.1), its tarpit, and the connection log (testbed.connlog), with
OpenSSL's s_client and raw sockets from chosen source addresses."""

from __future__ import annotations

import itertools
import os
import random
import re
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from testbed.connlog import ConnectionRecord, Outcome, read_log, summarise, summary_for
from testbed.model import Behavior, Listener, Pushback
from testbed.responder import stop_responder
from testbed.responder_config import write_config
from tests.integration.responder_support import (
    BANNER,
    HOSTNAME,
    client_context,
    free_addresses,
    read_reply,
    serving,
    start_responder,
    write_test_chains,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="binding port 25 needs root")

GREETING_DELAY = 0.6
GREYLIST_WINDOW = 2.0
TLS_DELAY = 0.5
TARPIT_INTERVAL = 0.05


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_chains(tmp_path_factory.mktemp("pki"))


@dataclass(frozen=True, slots=True)
class PushbackResponder:
    # Listener addresses by role, see the ``pushback_responder`` fixture.
    addresses: dict[str, str]
    log: Path
    # Unused source addresses: per-client state starts afresh with each.
    clients: Iterator[str]

    def client(self) -> str:
        return next(self.clients)


@pytest.fixture(scope="module")
def pushback_responder(
    tmp_path_factory: pytest.TempPathFactory, pki_dir: Path
) -> Iterator[PushbackResponder]:
    workdir = tmp_path_factory.mktemp("pushback")
    roles = {
        "greeting": Pushback(greeting_delay=GREETING_DELAY),
        "greylist": Pushback(greylist_window=GREYLIST_WINDOW),
        "concurrent": Pushback(max_concurrent=1),
        "rate": Pushback(max_per_minute=2),
        "tls_delay": Pushback(tls_delay=TLS_DELAY),
        "reset_first": Pushback(reset_first_handshake=True),
    }
    names = [*roles, "tls_reset", "tarpit", "logged"]
    addresses = dict(zip(names, free_addresses(len(names)), strict=True))
    listeners = [
        Listener(addresses[role], Behavior.STARTTLS, {}, "ec-a", pushback)
        for role, pushback in roles.items()
    ]
    listeners += [
        Listener(addresses["tls_reset"], Behavior.TLS_RESET),
        Listener(addresses["tarpit"], Behavior.TARPIT, {}, "ec-a"),
        Listener(addresses["logged"], Behavior.STARTTLS, {"mx.b.test": "ec-b"}, "ec-a"),
    ]
    log = workdir / "connections.jsonl"
    prefix = f"127.{random.randrange(100, 201)}.{random.randrange(256)}"
    clients = (f"{prefix}.{host}" for host in range(1, 255))
    with serving(
        workdir, listeners, pki_dir=pki_dir, connection_log=log, tarpit_interval=TARPIT_INTERVAL
    ):
        yield PushbackResponder(addresses, log, clients)


def connect(address: str, client: str, timeout: float = 10) -> socket.socket:
    return socket.create_connection((address, 25), timeout=timeout, source_address=(client, 0))


def s_client_from(
    address: str, client: str, sni: str = "mx.a.test", timeout: float = 30
) -> subprocess.CompletedProcess[bytes]:
    """``openssl s_client -starttls smtp`` from source address ``client``."""
    argv = ["openssl", "s_client", "-starttls", "smtp", "-connect", f"{address}:25"]
    argv += ["-bind", f"{client}:0", "-servername", sni]
    return subprocess.run(argv, input=b"", capture_output=True, timeout=timeout, check=False)


def handshake_done(result: subprocess.CompletedProcess[bytes]) -> bool:
    return re.search(rb"New, TLSv1\.[23],", result.stdout) is not None


def was_reset(result: subprocess.CompletedProcess[bytes]) -> bool:
    return result.returncode != 0 and b"errno=104" in result.stderr  # ECONNRESET


def logged(log: Path, client: str, count: int) -> list[ConnectionRecord]:
    """The finished connections from ``client``, once ``count`` of them are in the log
    (the responder flushes it every quarter second)."""
    deadline = time.monotonic() + 5
    while True:
        records = [r for r in read_log(log) if r.client == client and r.end is not None]
        if len(records) >= count or time.monotonic() > deadline:
            return sorted(records, key=lambda r: r.start)
        time.sleep(0.05)


def ehlo(sock: socket.socket, buffer: bytearray) -> list[bytes]:
    sock.sendall(b"EHLO scanner.test\r\n")
    return read_reply(sock, buffer)


def starttls(sock: socket.socket, buffer: bytearray) -> None:
    """From the banner to the 220 to STARTTLS."""
    assert read_reply(sock, buffer)[0].startswith(b"220 ")
    assert ehlo(sock, buffer)[-1] == b"250 STARTTLS"
    sock.sendall(b"STARTTLS\r\n")
    assert read_reply(sock, buffer) == [b"220 2.0.0 Ready to start TLS"]


def test_greeting_delay(pushback_responder: PushbackResponder) -> None:
    address = pushback_responder.addresses["greeting"]
    client = pushback_responder.client()
    started = time.monotonic()
    with connect(address, client) as sock:
        # Sent before the greeting: answered after it.
        sock.sendall(b"EHLO scanner.test\r\n")
        buffer = bytearray()
        assert read_reply(sock, buffer) == [BANNER.rstrip()]
        waited = time.monotonic() - started
        assert read_reply(sock, buffer)[0] == f"250-{HOSTNAME}".encode()
    assert GREETING_DELAY <= waited < GREETING_DELAY + 0.5

    other = pushback_responder.client()
    started = time.monotonic()
    result = s_client_from(address, other)
    assert handshake_done(result), result.stderr
    assert GREETING_DELAY <= time.monotonic() - started < GREETING_DELAY + 3
    ((plain,), (tls,)) = (
        logged(pushback_responder.log, client, 1),
        logged(pushback_responder.log, other, 1),
    )
    assert (plain.outcome, plain.sni, plain.server) == (Outcome.NO_TLS, "", address)
    assert (tls.outcome, tls.sni, tls.server) == (Outcome.TLS, "mx.a.test", address)


def greylisted(seconds: int) -> bytes:
    return f"450 4.7.1 {HOSTNAME}: Greylisted, try again in {seconds} seconds".encode()


def test_greylisting(pushback_responder: PushbackResponder) -> None:
    address = pushback_responder.addresses["greylist"]
    client, other = pushback_responder.client(), pushback_responder.client()
    with connect(address, client) as sock:
        buffer = bytearray()
        assert read_reply(sock, buffer) == [BANNER.rstrip()]
        assert ehlo(sock, buffer) == [greylisted(2)]
        sock.sendall(b"HELO scanner.test\r\nQUIT\r\n")
        assert read_reply(sock, buffer)[0].startswith(b"450 4.7.1 ")
        assert read_reply(sock, buffer) == [b"221 2.0.0 Bye"]
    # s_client sees the 450 and no STARTTLS in it.
    result = s_client_from(address, other)
    assert b"Greylisted, try again in" in result.stderr
    assert b"Didn't find STARTTLS" in result.stderr
    both_seen = time.monotonic()
    # An immediate retry is greylisted still.
    with connect(address, client) as sock:
        buffer = bytearray()
        read_reply(sock, buffer)
        assert ehlo(sock, buffer)[0] in (greylisted(1), greylisted(2))
    time.sleep(max(0.0, both_seen + GREYLIST_WINDOW + 0.1 - time.monotonic()))
    # After the window the client passes, and is remembered.
    for _ in range(2):
        with connect(address, client) as sock:
            buffer = bytearray()
            read_reply(sock, buffer)
            assert ehlo(sock, buffer)[-1] == b"250 STARTTLS"
    result = s_client_from(address, other)
    assert handshake_done(result)
    assert b"Didn't find STARTTLS" not in result.stderr
    records = logged(pushback_responder.log, client, 4)
    assert [r.outcome for r in records] == [Outcome.GREYLISTED] * 2 + [Outcome.NO_TLS] * 2
    # s_client carried on to STARTTLS regardless the first time: still greylisted.
    records = logged(pushback_responder.log, other, 2)
    assert [(r.outcome, r.sni) for r in records] == [
        (Outcome.GREYLISTED, "mx.a.test"),
        (Outcome.TLS, "mx.a.test"),
    ]


def test_concurrency_limit(pushback_responder: PushbackResponder) -> None:
    address = pushback_responder.addresses["concurrent"]
    client, other = pushback_responder.client(), pushback_responder.client()
    refusal = f"421 4.7.0 {HOSTNAME} Error: too many connections from {client}\r\n"
    with connect(address, client) as first:
        assert first.recv(3) == b"220"
        with connect(address, client) as second:
            assert second.makefile("rb").read() == refusal.encode()
        # Other clients have limits of their own.
        with connect(address, other) as third:
            assert third.recv(3) == b"220"
            # s_client from ``other``, now at its limit, is refused.
            assert not handshake_done(s_client_from(address, other))
        first.sendall(b"QUIT\r\n")
        first.makefile("rb").read()
    # The refused connections did not count: the next one is served.
    with connect(address, client) as sock:
        assert sock.recv(3) == b"220"
    assert handshake_done(s_client_from(address, other))
    records = logged(pushback_responder.log, client, 3)
    assert [r.outcome for r in records] == [Outcome.NO_TLS, Outcome.OVER_LIMIT, Outcome.NO_TLS]
    records = logged(pushback_responder.log, other, 3)
    assert [r.outcome for r in records] == [Outcome.NO_TLS, Outcome.OVER_LIMIT, Outcome.TLS]
    summary = summarise(records, now=time.time())
    assert (summary["max_concurrent"], summary["over_limit"]) == (2, 1)


def test_rate_limit(pushback_responder: PushbackResponder) -> None:
    address = pushback_responder.addresses["rate"]
    client, other = pushback_responder.client(), pushback_responder.client()
    for expected in (b"220", b"220", b"421"):
        with connect(address, client) as sock:
            sock.sendall(b"QUIT\r\n")
            assert sock.makefile("rb").readline()[:3] == expected
    assert [handshake_done(s_client_from(address, other)) for _ in range(3)] == [
        True,
        True,
        False,
    ]
    records = logged(pushback_responder.log, client, 3)
    assert [r.outcome for r in records] == [Outcome.NO_TLS, Outcome.NO_TLS, Outcome.OVER_LIMIT]
    records = logged(pushback_responder.log, other, 3)
    assert [r.outcome for r in records] == [Outcome.TLS, Outcome.TLS, Outcome.OVER_LIMIT]


def test_tls_delay(pushback_responder: PushbackResponder) -> None:
    address = pushback_responder.addresses["tls_delay"]
    client, other = pushback_responder.client(), pushback_responder.client()
    with smtplib.SMTP(address, 25, "scanner.test", timeout=10, source_address=(client, 0)) as smtp:
        assert smtp.ehlo()[0] == 250
        started = time.monotonic()
        assert smtp.starttls(context=client_context())[0] == 220
        assert TLS_DELAY <= time.monotonic() - started < TLS_DELAY + 0.5
        assert smtp.ehlo()[0] == 250
    started = time.monotonic()
    assert handshake_done(s_client_from(address, other))
    assert TLS_DELAY <= time.monotonic() - started < TLS_DELAY + 3
    # smtplib names the host by its address, and an address is never sent as SNI.
    ((plain,), (tls,)) = (
        logged(pushback_responder.log, client, 1),
        logged(pushback_responder.log, other, 1),
    )
    assert (plain.outcome, plain.sni) == (Outcome.TLS, "")
    assert (tls.outcome, tls.sni) == (Outcome.TLS, "mx.a.test")


def tls_handshake(address: str, client: str, sni: str) -> str:
    """STARTTLS and a TLS handshake with Python's ssl; the protocol version."""
    with connect(address, client) as sock:
        starttls(sock, bytearray())
        with client_context().wrap_socket(sock, server_hostname=sni) as tls:
            version = tls.version()
            assert version is not None
            return version


def test_reset_first_handshake(pushback_responder: PushbackResponder) -> None:
    address = pushback_responder.addresses["reset_first"]
    client, other = pushback_responder.client(), pushback_responder.client()
    with pytest.raises(ConnectionResetError):
        tls_handshake(address, client, "mx.b.test")
    assert tls_handshake(address, client, "mx.b.test") == "TLSv1.3"
    first = s_client_from(address, other)
    assert was_reset(first), first.stderr
    assert handshake_done(s_client_from(address, other))
    for who in (client, other):
        records = logged(pushback_responder.log, who, 2)
        assert [r.outcome for r in records] == [Outcome.RESET, Outcome.TLS]
        # The SNI of the reset hello was read before the reset.
        assert records[0].sni == records[1].sni == ("mx.b.test" if who == client else "mx.a.test")


def test_tls_reset_resets_every_handshake(pushback_responder: PushbackResponder) -> None:
    address = pushback_responder.addresses["tls_reset"]
    client, other = pushback_responder.client(), pushback_responder.client()
    for _ in range(2):
        with pytest.raises(ConnectionResetError):
            tls_handshake(address, client, "mx.a.test")
        result = s_client_from(address, other)
        assert was_reset(result), result.stderr
    for who in (client, other):
        records = logged(pushback_responder.log, who, 2)
        assert [(r.outcome, r.sni) for r in records] == [(Outcome.RESET, "mx.a.test")] * 2


def test_tarpit(pushback_responder: PushbackResponder) -> None:
    address = pushback_responder.addresses["tarpit"]
    client, other, quitter = (pushback_responder.client() for _ in range(3))
    with connect(address, client) as sock:
        started = time.monotonic()
        banner = b""
        arrivals: list[float] = []
        while not banner.endswith(b"\n"):
            chunk = sock.recv(64)
            assert chunk, banner
            banner += chunk
            arrivals.append(time.monotonic())
        elapsed = arrivals[-1] - started
        sock.sendall(b"QUIT\r\n")
        assert sock.makefile("rb").read() == b"221 2.0.0 Bye\r\n"
    assert banner == BANNER
    stutter = (len(BANNER) - 1) * TARPIT_INTERVAL
    assert stutter * 0.9 <= elapsed < stutter * 1.5 + 0.3
    gaps = sorted(b - a for a, b in itertools.pairwise(arrivals))
    assert gaps[len(gaps) // 2] >= TARPIT_INTERVAL * 0.8
    # A client that gives up mid-banner is noticed; nothing is left writing.
    with connect(address, quitter) as sock:
        assert sock.recv(1) == b"2"
    # s_client gets nowhere within a session deadline shorter than the banner.
    with pytest.raises(subprocess.TimeoutExpired) as expired:
        s_client_from(address, other, timeout=stutter / 2)
    assert not re.search(rb"New, TLSv1\.[23],", expired.value.stdout or b"")
    (plain,) = logged(pushback_responder.log, client, 1)
    (gave_up,) = logged(pushback_responder.log, quitter, 1)
    (confused,) = logged(pushback_responder.log, other, 1)
    assert plain.outcome == gave_up.outcome == confused.outcome == Outcome.TARPIT
    assert gave_up.end is not None
    assert gave_up.end - gave_up.start < 10 * TARPIT_INTERVAL + 1


def test_tarpit_serves_a_patient_client_over_tls(tmp_path: Path, pki_dir: Path) -> None:
    # A tarpit is a STARTTLS host, only slow: a client that reads whole
    # replies gets to TLS, where the replies stutter too. A short interval
    # keeps the 160-odd bytes before the handshake quick.
    (address,) = free_addresses(1)
    config = tmp_path / "r.json"
    write_config(
        config,
        [Listener(address, Behavior.TARPIT, {}, "ec-a")],
        pki_dir=pki_dir,
        hostname=HOSTNAME,
        connection_log=tmp_path / "connections.jsonl",
        tarpit_interval=0.005,
    )
    proc = start_responder(config, tmp_path)
    try:
        with connect(address, "127.0.0.1") as sock:
            buffer = bytearray()
            started = time.monotonic()
            starttls(sock, buffer)
            # The banner, the EHLO reply and the 220 to STARTTLS; the first
            # byte of a reply may go at once, and the loop's clock is coarse.
            gaps = (46 - 1) + (86 - 1) + (30 - 1)
            assert time.monotonic() - started >= gaps * 0.005 * 0.8
            with client_context().wrap_socket(sock, server_hostname="mx.a.test") as tls:
                started = time.monotonic()
                tls.sendall(b"NOOP\r\n")
                assert read_reply(tls, buffer) == [b"250 2.0.0 OK"]
                assert time.monotonic() - started >= (14 - 1) * 0.005 * 0.8
    finally:
        stop_responder(proc)
    (record,) = read_log(tmp_path / "connections.jsonl")
    assert (record.outcome, record.sni) == (Outcome.TLS, "mx.a.test")


def test_connection_log_and_summary(pushback_responder: PushbackResponder) -> None:
    address = pushback_responder.addresses["logged"]
    client = pushback_responder.client()
    wall_start = time.time()
    # Three connections one after the other, 0.3 s apart...
    for n in range(3):
        if n:
            time.sleep(0.3)
        with connect(address, client) as sock:
            sock.sendall(b"QUIT\r\n")
            sock.makefile("rb").read()
    time.sleep(0.3)
    # ... then two at once, one of them with TLS.
    with connect(address, client) as first, connect(address, client) as second:
        starttls(first, bytearray())
        with client_context().wrap_socket(first, server_hostname="mx.b.test") as tls:
            assert tls.version() is not None
            # Open connections are in the log within its flush interval.
            deadline = time.monotonic() + 2
            while (
                sum(r.client == client and r.end is None for r in read_log(pushback_responder.log))
                < 2
            ):
                assert time.monotonic() < deadline, "open connections not logged"
                time.sleep(0.05)
            second.sendall(b"QUIT\r\n")
            second.makefile("rb").read()
    records = logged(pushback_responder.log, client, 5)
    wall_end = time.time()
    assert len(records) == 5
    assert all((r.server, r.client) == (address, client) for r in records)
    assert all(wall_start <= r.start <= (r.end or 0) <= wall_end for r in records)
    assert [r.outcome for r in records[:3]] == [Outcome.NO_TLS] * 3
    assert sorted((r.outcome or "", r.sni) for r in records[3:]) == [
        (Outcome.NO_TLS, ""),
        (Outcome.TLS, "mx.b.test"),
    ]

    summary = summarise(records, now=time.time())
    gap = summary["min_gap_s"]
    assert gap is not None
    assert 0 <= gap < 0.1
    assert summary == {
        "connections": 5,
        "max_concurrent": 2,
        "min_gap_s": gap,
        "over_limit": 0,
        "per_address": [
            {
                "address": address,
                "connections": 5,
                "max_concurrent": 2,
                "min_gap_s": gap,
                "over_limit": 0,
            }
        ],
        "outcomes": {"no_tls": 4, "tls": 1},
    }
    sequential = summarise(records[:3], now=time.time())
    assert sequential["max_concurrent"] == 1
    sequential_gap = sequential["min_gap_s"]
    assert sequential_gap is not None
    assert 0.3 <= sequential_gap < 0.45
    # The whole log, as `testbed connections` shows it, has the same entry.
    whole = summary_for(pushback_responder.log)
    (entry,) = [item for item in whole["per_address"] if item["address"] == address]
    assert entry == summary["per_address"][0]
