"""The testbed's STARTTLS responder (RFC 5321, RFC 3207) as a real process on
port 25 of unused 127.x.y.z addresses, checked with OpenSSL's s_client and
Python's smtplib as independent clients."""

from __future__ import annotations

import os
import re
import smtplib
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanner.match.der import pem_certificates
from testbed.model import Behavior, Listener
from tests.integration.responder_support import (
    BANNER,
    HOSTNAME,
    IDLE_TIMEOUT,
    SILENT_TIMEOUT,
    client_context,
    free_addresses,
    read_reply,
    serving,
    write_test_chains,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="binding port 25 needs root")


@pytest.fixture(scope="module")
def pki_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_test_chains(tmp_path_factory.mktemp("pki"))


@dataclass(frozen=True, slots=True)
class RunningResponder:
    pki_dir: Path
    # Listener addresses by role, see the ``responder`` fixture.
    addresses: dict[str, str]


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
    with serving(workdir, listeners, pki_dir=pki_dir):
        yield RunningResponder(pki_dir, addresses)


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
        assert sock.makefile("rb").readline() == BANNER


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
