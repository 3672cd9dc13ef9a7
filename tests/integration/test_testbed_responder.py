"""The testbed's STARTTLS responder (RFC 5321, RFC 3207) as a real process on
port 25 of unused 127.x.y.z addresses, checked with OpenSSL's s_client and
Python's smtplib as independent clients."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import random
import re
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanner.match.der import pem_certificates
from testbed.connlog import ConnectionRecord, Outcome, read_log, summarise, summary_for
from testbed.model import Behavior, Listener, Pushback
from testbed.pki import KeyType, Pki, write_chain
from testbed.procs import TestbedError, ensure_free
from testbed.responder import stop_responder
from testbed.responder_config import (
    CONFIG_VERSION,
    ResponderConfig,
    ResponderError,
    is_loopback,
    load_config,
    write_config,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="binding port 25 needs root")

REPO = Path(__file__).resolve().parents[2]
HOSTNAME = "mx.responder.test"
# Short, so that the idle and silent time-outs can be observed in a test.
IDLE_TIMEOUT = 3.0
SILENT_TIMEOUT = 3.0


def free_addresses(count: int) -> list[str]:
    """``count`` addresses of a random 127.B.C.0/24 (B in 100-200) where port 25 is free."""
    prefix = f"127.{random.randrange(100, 201)}.{random.randrange(256)}"
    found = []
    for host in random.sample(range(1, 255), 254):
        try:
            ensure_free(f"{prefix}.{host}", 25)
        except TestbedError:
            continue
        found.append(f"{prefix}.{host}")
        if len(found) == count:
            return found
    raise AssertionError(f"no {count} free addresses in {prefix}.0/24")


def start_responder(config: Path, workdir: Path) -> subprocess.Popen[bytes]:
    """The responder as a subprocess, returned once its ready file exists."""
    ready = workdir / f"{config.stem}.ready"
    log = workdir / f"{config.stem}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "testbed.responder", str(config), "--ready-file", str(ready)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 20
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"responder did not become ready: {log.read_text()}")
        time.sleep(0.02)
    return proc


@dataclass(frozen=True, slots=True)
class RunningResponder:
    pki_dir: Path
    # Listener addresses by role, see the ``responder`` fixture.
    addresses: dict[str, str]


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Chains ec-a, ec-b (ECDSA, for mx.a.test and mx.b.test) and rsa-c (mx.c.test)."""
    pki_dir = tmp_path_factory.mktemp("pki")
    pki = Pki(seed=25, now=dt.datetime.now(dt.UTC))
    for kind, tag in ((KeyType.ECDSA, "ec"), (KeyType.RSA, "rsa")):
        root = pki.ca(f"Test Root {tag}", kind)
        inter = pki.ca(f"Test Intermediate {tag}", kind, issuer=root)
        names = ("a", "b") if kind is KeyType.ECDSA else ("c",)
        for name in names:
            leaf = pki.leaf([f"mx.{name}.test"], inter, kind, key_label=name)
            write_chain(pki_dir, f"{tag}-{name}", [leaf, inter, root])
    return pki_dir


@pytest.fixture(scope="module")
def responder(
    tmp_path_factory: pytest.TempPathFactory, pki_dir: Path
) -> Iterator[RunningResponder]:
    workdir = tmp_path_factory.mktemp("responder")
    roles = ["multi", "single", "no_starttls", "starttls_454", "silent", "other_map"]
    addresses = dict(zip(roles, free_addresses(len(roles)), strict=True))
    listeners = [
        # Several SNI names with different chains and key types.
        Listener(
            addresses["multi"],
            Behavior.STARTTLS,
            {"mx.a.test": "ec-a", "mx.b.test": "ec-b", "mx.c.test": "rsa-c"},
            "ec-a",
        ),
        # One chain whatever the SNI.
        Listener(addresses["single"], Behavior.STARTTLS, {}, "rsa-c"),
        Listener(addresses["no_starttls"], Behavior.NO_STARTTLS),
        Listener(addresses["starttls_454"], Behavior.STARTTLS_454),
        Listener(addresses["silent"], Behavior.SILENT),
        # The same SNI name as on "multi" selects another chain here.
        Listener(addresses["other_map"], Behavior.STARTTLS, {"mx.a.test": "rsa-c"}, "ec-b"),
    ]
    config = workdir / "responder.json"
    write_config(
        config,
        listeners,
        pki_dir=pki_dir,
        hostname=HOSTNAME,
        idle_timeout=IDLE_TIMEOUT,
        silent_timeout=SILENT_TIMEOUT,
    )
    proc = start_responder(config, workdir)
    yield RunningResponder(pki_dir, addresses)
    stop_responder(proc)


def s_client(address: str, sni: str | None, version: str) -> tuple[list[bytes], str]:
    """The chain (DER) and protocol that ``openssl s_client -starttls smtp`` sees."""
    argv = ["openssl", "s_client", "-starttls", "smtp", "-connect", f"{address}:25"]
    argv += ["-showcerts", f"-{version}"]
    argv += ["-servername", sni] if sni is not None else ["-noservername"]
    result = subprocess.run(argv, input=b"", capture_output=True, timeout=30, check=False)
    protocol = re.search(rb"New, (TLSv1\.[23]),", result.stdout)
    assert protocol is not None, result.stdout.decode(errors="replace")
    return pem_certificates(result.stdout), protocol.group(1).decode()


@pytest.mark.parametrize(
    ("role", "sni", "chain_id"),
    [
        ("multi", "mx.a.test", "ec-a"),
        ("multi", "mx.b.test", "ec-b"),
        ("multi", "mx.c.test", "rsa-c"),
        ("multi", "MX.B.TEST", "ec-b"),  # SNI names are case-insensitive
        ("multi", "unknown.test", "ec-a"),  # unknown SNI: the default chain
        ("multi", None, "ec-a"),  # no SNI: the default chain
        ("single", "mx.a.test", "rsa-c"),
        ("other_map", "mx.a.test", "rsa-c"),
        ("other_map", "mx.c.test", "ec-b"),
    ],
)
@pytest.mark.parametrize("version", ["tls1_3", "tls1_2"])
def test_chain_depends_on_address_and_sni(
    responder: RunningResponder, role: str, sni: str | None, chain_id: str, version: str
) -> None:
    chain, protocol = s_client(responder.addresses[role], sni, version)
    expected = pem_certificates((responder.pki_dir / f"{chain_id}.pem").read_bytes())
    assert len(expected) == 3
    assert chain == expected
    assert protocol == {"tls1_3": "TLSv1.3", "tls1_2": "TLSv1.2"}[version]


def client_context() -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def test_starttls_dialogue(responder: RunningResponder) -> None:
    with smtplib.SMTP(responder.addresses["multi"], 25, "scanner.test", timeout=10) as smtp:
        code, banner = smtp.ehlo()
        assert code == 250
        assert banner.split(b"\n")[0] == HOSTNAME.encode()
        for extension in ("starttls", "pipelining", "size", "8bitmime"):
            assert smtp.has_extn(extension), extension
        assert smtp.starttls(context=client_context())[0] == 220
        assert smtp.ehlo()[0] == 250
        assert not smtp.has_extn("starttls")
        assert smtp.docmd("STARTTLS")[0] == 503
        assert smtp.noop()[0] == 250
        assert smtp.mail("sender@example.test")[0] == 503


def test_banner(responder: RunningResponder) -> None:
    with socket.create_connection((responder.addresses["single"], 25), timeout=10) as sock:
        assert (
            sock.makefile("rb").readline() == f"220 {HOSTNAME} ESMTP danescan-testbed\r\n".encode()
        )


def test_mail_is_never_accepted(responder: RunningResponder) -> None:
    with smtplib.SMTP(responder.addresses["single"], 25, "scanner.test", timeout=10) as smtp:
        assert smtp.helo()[0] == 250
        assert smtp.mail("sender@example.test")[0] == 503
        assert smtp.rcpt("rcpt@example.test")[0] == 503
        assert smtp.docmd("DATA")[0] == 503
        assert smtp.docmd("VRFY", "postmaster")[0] == 502
        assert smtp.rset()[0] == 250


def test_no_starttls_is_not_offered(responder: RunningResponder) -> None:
    with smtplib.SMTP(responder.addresses["no_starttls"], 25, "scanner.test", timeout=10) as smtp:
        assert smtp.ehlo()[0] == 250
        assert smtp.has_extn("pipelining")
        assert not smtp.has_extn("starttls")
        assert smtp.docmd("STARTTLS")[0] == 502


def test_starttls_454(responder: RunningResponder) -> None:
    with smtplib.SMTP(responder.addresses["starttls_454"], 25, "scanner.test", timeout=10) as smtp:
        assert smtp.ehlo()[0] == 250
        assert smtp.has_extn("starttls")
        assert smtp.docmd("STARTTLS") == (454, b"4.7.0 TLS not available")


def test_quit(responder: RunningResponder) -> None:
    with socket.create_connection((responder.addresses["single"], 25), timeout=10) as sock:
        sock.sendall(b"QUIT\r\n")
        replies = sock.makefile("rb").read()
    assert replies.endswith(b"\r\n221 2.0.0 Bye\r\n")


def test_silent_host_never_speaks_then_closes(responder: RunningResponder) -> None:
    with socket.create_connection((responder.addresses["silent"], 25), timeout=1) as sock:
        sock.sendall(b"EHLO scanner.test\r\n")
        with pytest.raises(TimeoutError):
            sock.recv(1)
        sock.settimeout(SILENT_TIMEOUT + 5)
        assert sock.recv(1) == b""


def test_idle_client_is_disconnected(responder: RunningResponder) -> None:
    with socket.create_connection((responder.addresses["single"], 25), timeout=10) as sock:
        started = time.monotonic()
        replies = sock.makefile("rb").read()
    assert replies.splitlines()[-1] == f"421 4.4.2 {HOSTNAME} Timeout".encode()
    assert IDLE_TIMEOUT - 0.5 < time.monotonic() - started < IDLE_TIMEOUT + 5


def test_overlong_line_is_refused(responder: RunningResponder) -> None:
    with socket.create_connection((responder.addresses["single"], 25), timeout=10) as sock:
        sock.sendall(b"EHLO " + b"x" * 8000)
        replies = sock.makefile("rb").read()
    assert replies.splitlines()[-1] == b"500 5.5.2 Line too long"


def read_reply(sock: socket.socket, buffer: bytearray) -> list[bytes]:
    """The lines of one SMTP reply; bytes after it stay in ``buffer``."""
    lines: list[bytes] = []
    while True:
        while b"\n" not in buffer:
            chunk = sock.recv(4096)
            assert chunk, f"connection closed after {lines}"
            buffer += chunk
        line, _, rest = bytes(buffer).partition(b"\n")
        buffer[:] = rest
        lines.append(line.rstrip(b"\r"))
        if line[3:4] != b"-":
            return lines


def test_plaintext_pipelined_after_starttls_is_discarded(responder: RunningResponder) -> None:
    # RFC 3207 section 4.2: commands sent in plaintext after STARTTLS must not
    # be answered over TLS as if the client had sent them there.
    with socket.create_connection((responder.addresses["multi"], 25), timeout=10) as sock:
        buffer = bytearray()
        read_reply(sock, buffer)
        sock.sendall(b"EHLO scanner.test\r\nSTARTTLS\r\nNOOP\r\n")
        read_reply(sock, buffer)
        assert read_reply(sock, buffer) == [b"220 2.0.0 Ready to start TLS"]
        assert not buffer
        with client_context().wrap_socket(sock) as tls:
            tls.sendall(b"EHLO scanner.test\r\n")
            assert read_reply(tls, buffer)[0] == f"250-{HOSTNAME}".encode()


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.255.255.254", True),
        ("::1", True),
        ("128.0.0.1", False),
        ("0.0.0.0", False),
        ("::", False),
        ("::ffff:127.0.0.1", False),
        ("192.0.2.1", False),
        ("localhost", False),
    ],
)
def test_is_loopback(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_write_config_refuses_non_loopback(tmp_path: Path) -> None:
    with pytest.raises(ResponderError, match=re.escape("192.0.2.1")):
        write_config(
            tmp_path / "r.json", [Listener("192.0.2.1", Behavior.SILENT)], pki_dir=tmp_path
        )
    assert not (tmp_path / "r.json").exists()


def test_config_round_trip(tmp_path: Path) -> None:
    listeners = [
        Listener("127.1.2.3", Behavior.STARTTLS, {"mx.a.test": "a", "mx.b.test": "b"}, "a"),
        Listener("::1", Behavior.STARTTLS_454),
    ]
    write_config(tmp_path / "r.json", listeners, pki_dir=tmp_path, port=2525, hostname="h.test")
    config = load_config(tmp_path / "r.json")
    assert config.listeners == tuple(listeners)
    assert (config.port, config.hostname, config.pki_dir) == (2525, "h.test", tmp_path.resolve())
    assert (config.connection_log, config.tarpit_interval) == (None, 1.0)
    # A listener without pushback writes none: a loopback config stays small.
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["version"] == CONFIG_VERSION
    assert all("pushback" not in item for item in document["listeners"])


def test_config_round_trip_with_pushback(tmp_path: Path) -> None:
    listeners = [
        Listener(
            "127.1.2.3",
            Behavior.STARTTLS,
            {},
            "a",
            Pushback(
                greeting_delay=1.5,
                greylist_window=0.0,
                max_concurrent=2,
                max_per_minute=30,
                tls_delay=0.25,
                reset_first_handshake=True,
            ),
        ),
        Listener("127.1.2.4", Behavior.TARPIT, {}, "a", Pushback(max_concurrent=1)),
        Listener("127.1.2.5", Behavior.TLS_RESET),
    ]
    log = tmp_path / "connections.jsonl"
    write_config(
        tmp_path / "r.json", listeners, pki_dir=tmp_path, connection_log=log, tarpit_interval=0.5
    )
    config = load_config(tmp_path / "r.json")
    assert config.listeners == tuple(listeners)
    assert (config.connection_log, config.tarpit_interval) == (log.resolve(), 0.5)
    # Only the fields that differ from no pushback are written.
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["listeners"][1]["pushback"] == {"max_concurrent": 1}


@pytest.mark.parametrize(
    ("pushback", "message"),
    [
        ({"max_concurrent": 0}, "at least 1"),
        ({"greylist_window": -1}, "negative"),
        ({"greeting_delay": "soon"}, "soon"),
        ({"reset_first_handshake": 1}, "true or false"),
        ({"tarpit": True}, "unknown pushback fields"),
    ],
)
def test_load_config_refuses_bad_pushback(
    tmp_path: Path, pushback: dict[str, object], message: str
) -> None:
    config = tmp_path / "r.json"
    write_config(config, [Listener("127.1.2.3", Behavior.NO_STARTTLS)], pki_dir=tmp_path)
    document = json.loads(config.read_text())
    document["listeners"][0]["pushback"] = pushback
    config.write_text(json.dumps(document))
    with pytest.raises(ResponderError, match=message):
        load_config(config)


def test_chain_rules(tmp_path: Path) -> None:
    # A tarpit is a STARTTLS host, only slow: it needs a chain. A host that
    # resets every handshake never presents one.
    with pytest.raises(ResponderError, match="tarpit listener needs a default_chain"):
        ResponderConfig((Listener("127.1.2.3", Behavior.TARPIT),), pki_dir=tmp_path)
    ResponderConfig((Listener("127.1.2.3", Behavior.TLS_RESET),), pki_dir=tmp_path)
    with pytest.raises(ResponderError, match="tarpit_interval"):
        ResponderConfig((), pki_dir=tmp_path, tarpit_interval=0)


@pytest.mark.parametrize("address", ["192.0.2.1", "0.0.0.0", "::ffff:127.0.0.1"])
def test_process_refuses_non_loopback_address(tmp_path: Path, address: str) -> None:
    config = tmp_path / "r.json"
    write_config(config, [Listener("127.0.0.1", Behavior.SILENT)], pki_dir=tmp_path)
    document = json.loads(config.read_text())
    document["listeners"][0]["address"] = address
    config.write_text(json.dumps(document))
    result = subprocess.run(
        [sys.executable, "-m", "testbed.responder", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert f"refusing to listen on {address!r}" in result.stderr
    assert "ready" not in result.stdout


def test_process_refuses_missing_chain(tmp_path: Path) -> None:
    config = tmp_path / "r.json"
    write_config(config, [Listener("127.0.0.1", Behavior.STARTTLS, {}, "absent")], pki_dir=tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "testbed.responder", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert "absent.pem" in result.stderr


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_exits_cleanly_on_signal(tmp_path: Path, signum: signal.Signals) -> None:
    (address,) = free_addresses(1)
    config = tmp_path / "r.json"
    log = tmp_path / "connections.jsonl"
    write_config(
        config, [Listener(address, Behavior.NO_STARTTLS)], pki_dir=tmp_path, connection_log=log
    )
    proc = start_responder(config, tmp_path)
    try:
        # An open connection must not hold the process up.
        with socket.create_connection((address, 25), timeout=10) as sock:
            assert sock.recv(3) == b"220"
            proc.send_signal(signum)
            assert proc.wait(timeout=10) == 0
    finally:
        stop_responder(proc)
    ensure_free(address, 25)
    assert "stopped: 1 connections" in (tmp_path / "r.log").read_text()
    # The connection open at the end is in the log, flushed at exit.
    (record,) = read_log(log)
    assert (record.server, record.outcome) == (address, Outcome.ABORTED)


# --- pushback, the tarpit, TLS resets and the connection log --------------------------

GREETING_DELAY = 0.6
GREYLIST_WINDOW = 2.0
TLS_DELAY = 0.5
TARPIT_INTERVAL = 0.05
BANNER = f"220 {HOSTNAME} ESMTP danescan-testbed\r\n".encode()


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
    config = workdir / "responder.json"
    log = workdir / "connections.jsonl"
    write_config(
        config,
        listeners,
        pki_dir=pki_dir,
        hostname=HOSTNAME,
        idle_timeout=IDLE_TIMEOUT,
        silent_timeout=SILENT_TIMEOUT,
        connection_log=log,
        tarpit_interval=TARPIT_INTERVAL,
    )
    prefix = f"127.{random.randrange(100, 201)}.{random.randrange(256)}"
    clients = (f"{prefix}.{host}" for host in range(1, 255))
    proc = start_responder(config, workdir)
    yield PushbackResponder(addresses, log, clients)
    stop_responder(proc)


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
