"""The asyncio STARTTLS driver against small scripted servers on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import socket
import ssl
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypeVar

import pytest
import uvloop

from scanner.handshake.session import (
    SessionResult,
    SessionSettings,
    client_context,
    run_session,
)
from scanner.handshake.smtp import Reply, ehlo_keywords
from scanner.status import SmtpStatus
from tests.pki import make_chain

T = TypeVar("T")
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]

SNI = "mx.example.org"
FAST = SessionSettings(
    ehlo_name="scanner.example.net",
    connect_timeout=2.0,
    read_timeout=2.0,
    session_deadline=5.0,
    quit_timeout=0.5,
)
CONTEXT = client_context()


@dataclass(frozen=True)
class Pki:
    chain_pem: Path
    key_pem: Path
    chain_der: tuple[bytes, ...]  # leaf, intermediate, root: as served


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    chain = make_chain([SNI], now=dt.datetime.now(dt.UTC), days_before=1, days_after=30)
    chain_pem, key_pem = chain.write(tmp_path_factory.mktemp("pki"))
    return Pki(chain_pem, key_pem, chain.der)


@dataclass
class Seen:
    """What the fake server observed."""

    lines: list[bytes] = field(default_factory=list)
    sni: list[str | None] = field(default_factory=list)
    after_starttls: bytes | None = None


def server_context(pki: Pki, seen: Seen, *, tls10: bool = False) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.chain_pem, pki.key_pem)

    def record(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        seen.sni.append(name)

    context.sni_callback = record
    if tls10:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
            context.maximum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("ALL:@SECLEVEL=0")
    return context


def run(coro: Coroutine[Any, Any, T], *, loop: str = "asyncio") -> T:
    factory = uvloop.new_event_loop if loop == "uvloop" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro)


@contextlib.asynccontextmanager
async def serve(handler: Handler, host: str = "127.0.0.1") -> AsyncIterator[int]:
    """A scripted server on an ephemeral port; its handlers finish before this exits."""
    tasks: list[asyncio.Task[None]] = []

    async def guarded(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await handler(reader, writer)
        except (OSError, asyncio.IncompleteReadError):
            pass  # the client hung up: that is what several tests are about
        finally:
            writer.transport.abort()

    def start(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tasks.append(asyncio.ensure_future(guarded(reader, writer)))

    server = await asyncio.start_server(start, host, 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
        for task in tasks:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task, 5)


async def probe(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    settings: SessionSettings = FAST,
    sni: str = SNI,
) -> SessionResult:
    async with serve(handler, host) as port:
        return await run_session(host, sni, replace(settings, port=port), CONTEXT)


async def greet(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    seen: Seen,
    ehlo: bytes = b"250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS\r\n",
) -> None:
    """Banner and EHLO, as every scripted server starts."""
    writer.write(b"220 mx.example.org ESMTP test\r\n")
    seen.lines.append(await reader.readline())
    writer.write(ehlo)


async def answer_starttls(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, seen: Seen, reply: bytes
) -> None:
    """Banner, EHLO and STARTTLS, answered with ``reply``."""
    await greet(reader, writer, seen)
    seen.lines.append(await reader.readline())
    writer.write(reply)


def starttls_server(pki: Pki, seen: Seen, *, tls10: bool = False) -> Handler:
    context = server_context(pki, seen, tls10=tls10)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_starttls(reader, writer, seen, b"220 2.0.0 Ready to start TLS\r\n")
        await writer.start_tls(context)
        seen.lines.append(await reader.readline())
        writer.write(b"250-mx.example.org\r\n250 SIZE 1000\r\n")
        seen.lines.append(await reader.readline())
        writer.write(b"221 2.0.0 Bye\r\n")
        await writer.drain()

    return handler


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_ok_captures_the_served_chain_byte_for_byte(pki: Pki, loop: str) -> None:
    seen = Seen()
    result = run(probe(starttls_server(pki, seen)), loop=loop)
    assert (result.status, result.error) == (SmtpStatus.TLS_OK, "")
    assert result.chain == pki.chain_der
    assert len(result.chain) == 3
    assert result.tls_version == "TLSv1.3"
    assert result.cipher.startswith("TLS_")
    assert seen.sni == [SNI]
    assert seen.lines == [
        b"EHLO scanner.example.net\r\n",
        b"STARTTLS\r\n",
        b"EHLO scanner.example.net\r\n",
        b"QUIT\r\n",
    ]
    assert result.transcript.banner == Reply(220, ("mx.example.org ESMTP test",))
    assert result.ehlo_keywords == ("PIPELINING", "STARTTLS")
    assert ehlo_keywords(result.transcript.ehlo_tls) == ("SIZE 1000",)
    assert result.transcript.starttls == Reply(220, ("2.0.0 Ready to start TLS",))
    assert result.port != 25
    assert (result.address, result.sni) == ("127.0.0.1", SNI)
    timings = (result.connect_ms, result.tls_ms, result.total_ms)
    assert all(t is not None and t >= 0 for t in timings)
    assert result.total_ms is not None
    assert result.tls_ms is not None
    assert result.total_ms >= result.tls_ms


def test_chain_is_kept_when_ehlo_over_tls_fails(pki: Pki) -> None:
    seen = Seen()
    context = server_context(pki, seen)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, seen)
        await reader.readline()
        writer.write(b"220 go\r\n")
        await writer.start_tls(context)
        await reader.readline()
        writer.write(b"554 5.7.1 not you\r\n")
        await reader.readline()

    result = run(probe(handler))
    assert result.status is SmtpStatus.PROTOCOL_ERROR
    assert result.error == "EHLO over TLS answered 554 5.7.1 not you"
    assert result.chain == pki.chain_der
    assert result.tls_version == "TLSv1.3"


def test_sni_trailing_dot_is_dropped_and_addresses_are_not_sent(pki: Pki) -> None:
    seen = Seen()
    run(probe(starttls_server(pki, seen), sni="MX.example.org."))
    run(probe(starttls_server(pki, seen), sni="192.0.2.1"))
    run(probe(starttls_server(pki, seen), sni=""))
    assert seen.sni == ["MX.example.org", None, None]


def test_ipv6_loopback(pki: Pki) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 support in this Python")
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError as exc:
        pytest.skip(f"::1 not usable here: {exc}")
    seen = Seen()
    result = run(probe(starttls_server(pki, seen), host="::1"))
    assert result.status is SmtpStatus.TLS_OK
    assert result.address == "::1"
    assert result.chain == pki.chain_der


def _local_tls10_refusal(server: ssl.SSLContext) -> str | None:
    """Why this OpenSSL cannot complete a TLS 1.0 handshake at all, or None.

    Decided in memory with a client context of the test's own, so a scanner
    that wrongly refused TLS 1.0 still fails the test instead of skipping it.
    """
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            client.minimum_version = ssl.TLSVersion.TLSv1
            client.maximum_version = ssl.TLSVersion.TLSv1
        client.set_ciphers("ALL:@SECLEVEL=0")
    except (ssl.SSLError, ValueError) as exc:
        return str(exc)
    bios = [ssl.MemoryBIO() for _ in range(4)]
    ends = [
        client.wrap_bio(bios[0], bios[1], server_hostname=SNI),
        server.wrap_bio(bios[2], bios[3], server_side=True),
    ]
    done = [False, False]
    for _ in range(10):
        for side, end in enumerate(ends):
            if not done[side]:
                try:
                    end.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
                except ssl.SSLError as exc:
                    return str(exc)
        bios[2].write(bios[1].read())
        bios[0].write(bios[3].read())
        if all(done):
            return None
    return "handshake did not finish"


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_tls_1_0_only_server(pki: Pki, loop: str) -> None:
    seen = Seen()
    try:
        refusal = _local_tls10_refusal(server_context(pki, seen, tls10=True))
    except ssl.SSLError as exc:
        refusal = str(exc)
    if refusal is not None:
        pytest.skip(f"the local OpenSSL refuses TLS 1.0: {refusal}")
    seen = Seen()
    result = run(probe(starttls_server(pki, seen, tls10=True)), loop=loop)
    assert (result.status, result.error) == (SmtpStatus.TLS_OK, "")
    assert result.tls_version == "TLSv1"
    assert result.cipher
    assert result.chain == pki.chain_der


def test_no_starttls_offered(pki: Pki) -> None:
    seen = Seen()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await greet(reader, writer, seen, ehlo=b"250-mx\r\n250 8BITMIME\r\n")
        seen.lines.append(await reader.readline())
        writer.write(b"221 bye\r\n")

    result = run(probe(handler))
    assert (result.status, result.error) == (SmtpStatus.NO_STARTTLS, "")
    assert result.ehlo_keywords == ("8BITMIME",)
    assert (result.chain, result.tls_version, result.tls_ms) == ((), "", None)
    assert seen.lines[-1] == b"QUIT\r\n"


def test_starttls_answered_454(pki: Pki) -> None:
    seen = Seen()

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await answer_starttls(reader, writer, seen, b"454 4.7.0 TLS not available\r\n")
        seen.lines.append(await reader.readline())
        writer.write(b"221 bye\r\n")

    result = run(probe(handler))
    assert result.status is SmtpStatus.STARTTLS_REFUSED
    assert result.error == "STARTTLS 454 4.7.0 TLS not available"
    assert result.transcript.starttls == Reply(454, ("4.7.0 TLS not available",))
    assert seen.lines[-2:] == [b"STARTTLS\r\n", b"QUIT\r\n"]
