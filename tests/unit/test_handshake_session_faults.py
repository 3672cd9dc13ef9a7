"""The asyncio STARTTLS driver where things go wrong: refused and hanging
connects, silent and trickling servers, the STARTTLS command injection
(RFC 3207 section 4), resets and stalls in the TLS handshake, cancellation,
settings, old servers and a machine out of descriptors. The scripted
servers are test_handshake_session's."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from dataclasses import replace
from typing import Any, cast

import pytest

from scanner.handshake import session as session_module
from scanner.handshake.session import (
    client_context,
    peer_chain,
    run_session,
)
from scanner.status import SmtpStatus
from tests.unit.scarce import scarce_connections
from tests.unit.test_handshake_session import (
    CONTEXT,
    FAST,
    SNI,
    Handler,
    Pki,
    Seen,
    answer_starttls,
    greet,
    pki,
    probe,
    run,
    serve,
)

__all__ = ["pki"]  # the fixture, shared with the scripted servers


def test_connection_refused() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # Nothing listens on the port any more.
    result = run(run_session("127.0.0.1", SNI, replace(FAST, port=port), CONTEXT))
    assert (result.status, result.error) == (SmtpStatus.CONNECT_REFUSED, "connection refused")
    assert result.connect_ms is None
    assert result.total_ms is not None


def test_connect_timeout() -> None:
    # A listener with a full accept queue drops further SYNs: the connect hangs.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        filler.connect(("127.0.0.1", port))
        settings = replace(FAST, port=port, connect_timeout=0.3)
        result = run(run_session("127.0.0.1", SNI, settings, CONTEXT))
    assert result.status is SmtpStatus.CONNECT_TIMEOUT
    assert result.error == "no connection within 0.3 s"


def test_server_that_never_speaks_times_out_on_read() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # until the client gives up

    result = run(probe(handler, settings=replace(FAST, read_timeout=0.3)))
    assert result.status is SmtpStatus.IO_TIMEOUT
    assert result.error == "nothing within 0.3 s waiting for the banner"
    assert result.transcript.banner is None


def test_trickling_server_hits_the_session_deadline() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for byte in b"220-" + b"x" * 1000:
            writer.write(bytes([byte]))
            await writer.drain()
            await asyncio.sleep(0.02)

    settings = replace(FAST, read_timeout=1.0, session_deadline=0.4)
    result = run(probe(handler, settings=settings))
    assert result.status is SmtpStatus.IO_TIMEOUT
    assert result.error == "nothing within the session deadline of 0.4 s waiting for the banner"
    assert result.total_ms is not None
    assert 400 <= result.total_ms < 1000


def _injector(seen: Seen, pki: Pki) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_starttls(reader, writer, seen, b"220 go\r\n250 injected\r\n")
        await writer.drain()
        # A client that took the bait would start TLS now; a safe one hangs up.
        seen.after_starttls = await reader.read()

    return handler


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_starttls_injection_in_one_write(pki: Pki, loop: str) -> None:
    seen = Seen()
    result = run(probe(_injector(seen, pki)), loop=loop)
    assert result.status is SmtpStatus.PROTOCOL_ERROR
    assert result.error == "plaintext after the 220 reply to STARTTLS"
    assert (result.chain, result.tls_version) == ((), "")
    assert seen.after_starttls == b""


def test_starttls_injection_left_in_the_stream_buffer(
    pki: Pki, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Reads of exactly len(b"220 go\r\n") leave the injected line in the
    # StreamReader's buffer, where only the driver can see it.
    monkeypatch.setattr(session_module, "_READ_CHUNK", 8)
    seen = Seen()
    result = run(probe(_injector(seen, pki)))
    assert result.status is SmtpStatus.PROTOCOL_ERROR
    assert result.error == ("plaintext after the 220 reply to STARTTLS: b'250 injected\\r\\n'")
    assert seen.after_starttls == b""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_server_closes_in_the_middle_of_the_tls_handshake(pki: Pki, loop: str) -> None:
    seen = Seen()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_starttls(reader, writer, seen, b"220 go\r\n")
        seen.after_starttls = await reader.read(5)  # the ClientHello's record header

    result = run(probe(handler), loop=loop)
    assert seen.after_starttls is not None
    assert seen.after_starttls[:1] == b"\x16"
    assert result.status is SmtpStatus.TLS_ERROR
    assert result.error == "connection lost in the TLS handshake: ConnectionResetError"
    assert result.chain == ()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_server_answers_the_client_hello_with_plaintext(pki: Pki, loop: str) -> None:
    seen = Seen()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_starttls(reader, writer, seen, b"220 go\r\n")
        await reader.read(5)
        writer.write(b"500 what is this\r\n")
        await writer.drain()
        await reader.read()

    result = run(probe(handler), loop=loop)
    assert result.status is SmtpStatus.TLS_ERROR
    # The source line suffix "(_ssl.c:NNNN)" is stripped: it would split error counts.
    assert result.error == "[SSL: WRONG_VERSION_NUMBER] wrong version number"


def test_tls_handshake_that_stalls_times_out(pki: Pki) -> None:
    seen = Seen()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_starttls(reader, writer, seen, b"220 go\r\n")
        await reader.read()

    result = run(probe(handler, settings=replace(FAST, read_timeout=0.3)))
    assert result.status is SmtpStatus.IO_TIMEOUT
    assert result.error == "TLS handshake not done within 0.3 s"


def test_reset_while_waiting_for_ehlo(pki: Pki) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 hi\r\n")
        await reader.readline()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        writer.transport.abort()

    result = run(probe(handler))
    assert result.status is SmtpStatus.PROTOCOL_ERROR
    assert result.error == "connection closed while waiting for the reply to EHLO"


def test_not_an_address_is_skipped_without_a_connection() -> None:
    result = run(run_session("mx.example.org", SNI, FAST, CONTEXT))
    assert result.status is SmtpStatus.SKIPPED
    assert result.error == "not an IP address: 'mx.example.org'"
    assert result.connect_ms is None


def test_cancellation_propagates_and_hangs_up() -> None:
    async def scenario() -> bytes:
        hung_up: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            hung_up.set_result(await reader.read())

        async with serve(handler) as port:
            task = asyncio.ensure_future(
                run_session("127.0.0.1", SNI, replace(FAST, port=port), CONTEXT)
            )
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return await asyncio.wait_for(hung_up, 2)

    assert run(scenario()) == b""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"ehlo_name": "bad name"}, "EHLO name"),
        ({"ehlo_name": "x\r\nRCPT"}, "EHLO name"),
        ({"port": 0}, "port"),
        ({"port": 65536}, "port"),
        ({"connect_timeout": 0}, "connect_timeout"),
        ({"read_timeout": -1}, "read_timeout"),
        ({"session_deadline": 0}, "session_deadline"),
        ({"quit_timeout": 0}, "quit_timeout"),
    ],
)
def test_settings_are_validated(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(FAST, **change)


def test_client_context_accepts_old_servers() -> None:
    context = client_context()
    assert context.verify_mode is ssl.CERT_NONE
    assert context.check_hostname is False
    assert context.minimum_version == ssl.TLSVersion.MINIMUM_SUPPORTED or (
        int(context.minimum_version) <= 0x0301
    )
    assert context.options & 0x4  # SSL_OP_LEGACY_SERVER_CONNECT
    names = {c["name"] for c in context.get_ciphers()}
    assert "ECDHE-ECDSA-AES128-SHA" in names  # a TLS 1.0 suite
    assert not any(name.startswith(("ADH-", "AECDH-")) for name in names)


class _Der:
    def __init__(self, der: bytes) -> None:
        self.der = der

    def public_bytes(self, encoding: int) -> bytes:
        assert encoding == 2  # ENCODING_DER
        return self.der


class _Public:
    """Python 3.13 and later: a public method returning DER."""

    def get_unverified_chain(self) -> list[bytes]:
        return [b"leaf", b"ca"]


class _Private:
    """Python 3.10 to 3.12: only the private object has it, returning certificates."""

    class _Inner:
        def get_unverified_chain(self) -> list[_Der]:
            return [_Der(b"leaf"), _Der(b"ca")]

    _sslobj = _Inner()


class _Neither:
    def getpeercert(self, binary_form: bool) -> bytes:
        assert binary_form
        return b"leaf"


@pytest.mark.parametrize(
    ("ssl_object", "chain"),
    [(_Public(), (b"leaf", b"ca")), (_Private(), (b"leaf", b"ca")), (_Neither(), (b"leaf",))],
)
def test_peer_chain_compatibility(ssl_object: object, chain: tuple[bytes, ...]) -> None:
    assert peer_chain(cast(ssl.SSLObject, ssl_object)) == chain


@pytest.mark.parametrize("code", [errno.EMFILE, errno.ENFILE])
def test_no_descriptor_here_waits_and_is_not_the_servers_fault(
    code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """EMFILE/ENFILE on connect is this machine's (scanner.fdlimit): the
    session waits for a descriptor and goes on; no connect_refused."""
    seen = Seen()
    failures = scarce_connections(monkeypatch, code)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, seen, ehlo=b"250-mx\r\n250 8BITMIME\r\n")
        seen.lines.append(await reader.readline())
        writer.write(b"221 bye\r\n")

    result = run(probe(handler))
    assert failures == []
    assert (result.status, result.error) == (SmtpStatus.NO_STARTTLS, "")
