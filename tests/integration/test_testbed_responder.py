"""The testbed's STARTTLS responder (RFC 5321, RFC 3207) as a real process on
port 25 of unused 127.x.y.z addresses, checked with OpenSSL's s_client and
Python's smtplib as independent clients."""

from __future__ import annotations

import datetime as dt
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

from testbed.model import Behavior, Listener
from testbed.pki import KeyType, Pki, write_chain
from testbed.procs import TestbedError, ensure_free
from testbed.responder import (
    ResponderError,
    is_loopback,
    load_config,
    stop_responder,
    write_config,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="binding port 25 needs root")

REPO = Path(__file__).resolve().parents[2]
HOSTNAME = "mx.responder.test"
# Short, so that the idle and silent time-outs can be observed in a test.
IDLE_TIMEOUT = 3.0
SILENT_TIMEOUT = 3.0
_PEM_CERT = re.compile(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----\n?", re.S)


def pem_chain_der(pem: bytes) -> list[bytes]:
    """The certificates of a PEM text, in order, as DER."""
    return [ssl.PEM_cert_to_DER_cert(block.decode()) for block in _PEM_CERT.findall(pem)]


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
def responder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningResponder]:
    workdir = tmp_path_factory.mktemp("responder")
    pki_dir = workdir / "pki"
    pki_dir.mkdir()
    pki = Pki(seed=25, now=dt.datetime.now(dt.UTC))
    for kind, tag in ((KeyType.ECDSA, "ec"), (KeyType.RSA, "rsa")):
        root = pki.ca(f"Test Root {tag}", kind)
        inter = pki.ca(f"Test Intermediate {tag}", kind, issuer=root)
        names = ("a", "b") if kind is KeyType.ECDSA else ("c",)
        for name in names:
            leaf = pki.leaf([f"mx.{name}.test"], inter, kind, key_label=name)
            write_chain(pki_dir, f"{tag}-{name}", [leaf, inter, root])

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
    return pem_chain_der(result.stdout), protocol.group(1).decode()


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
    expected = pem_chain_der((responder.pki_dir / f"{chain_id}.pem").read_bytes())
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
    write_config(config, [Listener(address, Behavior.NO_STARTTLS)], pki_dir=tmp_path)
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
