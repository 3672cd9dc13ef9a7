"""One STARTTLS probe of one address over asyncio: connect, talk, upgrade, capture.

A thin driver around the sans-IO client in ``scanner.handshake.smtp``, which
decides everything about the SMTP dialogue; this module only moves bytes,
keeps time and runs the TLS handshake. It implements:

- RFC 3207 section 4: TLS starts right after the 220 reply to STARTTLS. Any
  plaintext the server sent after that reply and that already sits in the
  stream's buffer is a protocol error; it is never read as if it had come
  over TLS (the STARTTLS command injection flaw, on the client side).
- RFC 7672 section 8.1: SNI carries the TLSA base domain. The chain is taken
  unverified (CERT_NONE, no host name check) because DANE, not the web PKI,
  judges it later (RFC 7672 section 3); old servers (TLS 1.0, weak keys) are
  accepted so that what they offer is measured rather than refused.
- RFC 5321 section 4.5.3.2 sets minutes-long timeouts for MTAs; a survey
  cannot wait that long per address, so a connect timeout, a per-read timeout
  and a deadline for the whole session apply instead.

Every outcome is an ``SmtpStatus`` plus an error string: ``run_session`` maps
refused and failed connects, timeouts, TLS errors and resets onto statuses and
never raises (cancellation excepted).
"""

from __future__ import annotations

import _ssl
import asyncio
import ipaddress
import re
import ssl
import time
import warnings
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from scanner import names
from scanner.fdlimit import LocalWait, is_local_exhaustion
from scanner.handshake.smtp import (
    Done,
    Event,
    Phase,
    ReadyForTls,
    Send,
    SmtpClient,
    Transcript,
    ehlo_keywords,
    is_ehlo_name,
    offers,
)
from scanner.status import SmtpStatus

# Bytes asked of the stream per read; replies are small, the parser is bounded.
_READ_CHUNK = 16 * 1024
# The stream pauses the socket once its buffer holds twice this much.
_STREAM_LIMIT = 64 * 1024
# OpenSSL's SSL_OP_LEGACY_SERVER_CONNECT; the ssl module names it from 3.12 on.
_OP_LEGACY_SERVER_CONNECT = ssl.Options(getattr(ssl, "OP_LEGACY_SERVER_CONNECT", 0x4))
# "(_ssl.c:1006)" varies with the Python build and would split error counts.
_SSL_SOURCE_SUFFIX = re.compile(r"\s*\(_ssl\.c:\d+\)$")


# The error of a connection dropped after 220 to STARTTLS, before TLS came up:
# a sign of a STARTTLS downgrade (scanner.mailpolicy).
LOST_IN_TLS_HANDSHAKE = "connection lost in the TLS handshake"


@dataclass(frozen=True, slots=True)
class SessionSettings:
    """How one session behaves; part of the scan's configuration. Times in seconds."""

    # No defaults for what a scan sets: scanner.config.ScanConfig, which
    # builds these settings, is the one place those are set, so they cannot
    # drift apart. The fields after them are set here only.
    ehlo_name: str
    connect_timeout: float
    read_timeout: float
    session_deadline: float
    port: int = 25
    # Waiting for the reply to QUIT and for a clean close is courtesy: keep it short.
    quit_timeout: float = 2.0

    def __post_init__(self) -> None:
        if not is_ehlo_name(self.ehlo_name):
            raise ValueError(f"not usable as an EHLO name: {self.ehlo_name!r}")
        if not 0 < self.port < 65536:
            raise ValueError(f"port out of range: {self.port}")
        for name in ("connect_timeout", "read_timeout", "session_deadline", "quit_timeout"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be positive")


@dataclass(frozen=True, slots=True)
class SessionResult:
    """What one session with one address observed.

    The TLS fields are kept whatever the final status: a handshake that
    completed before EHLO over TLS failed still yields its chain (with a
    ``protocol_error`` status). Timings are in milliseconds, None for a phase
    that was not reached.
    """

    address: str
    port: int
    sni: str
    status: SmtpStatus
    error: str = ""
    transcript: Transcript = field(default_factory=Transcript)
    tls_version: str = ""
    cipher: str = ""
    # As sent by the server, leaf first, DER; not verified here.
    chain: tuple[bytes, ...] = ()
    connect_ms: float | None = None
    tls_ms: float | None = None
    total_ms: float | None = None
    # Set by the politeness layer when a transient refusal was retried.
    attempts: int = 1

    @property
    def ehlo_keywords(self) -> tuple[str, ...]:
        """Extensions offered in plaintext, before STARTTLS."""
        return ehlo_keywords(self.transcript.ehlo)

    @property
    def starttls_offered(self) -> bool | None:
        """Whether the plaintext EHLO reply offered STARTTLS (RFC 3207
        section 4); None when no EHLO reply came."""
        return offers(self.ehlo_keywords, "STARTTLS") if self.transcript.ehlo else None


def client_context() -> ssl.SSLContext:
    """The client TLS context; build it once per process and share it (it is costly)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        # The ssl module deprecates TLS 1.0; who still needs it is what a survey measures.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
    # OpenSSL 3 offers TLS 1.0/1.1 and SHA-1 signatures only at security level 0.
    # Anonymous and null suites stay out: a server choosing one shows no chain.
    context.set_ciphers("ALL:!aNULL:!eNULL:@SECLEVEL=0")
    # OpenSSL 3 refuses servers that predate RFC 5746 secure renegotiation.
    context.options |= _OP_LEGACY_SERVER_CONNECT
    # An abrupt close after TLS reads as a plain EOF, as it does before TLS.
    context.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    return context


def peer_chain(ssl_object: ssl.SSLObject) -> tuple[bytes, ...]:
    """The certificates the peer sent, leaf first, as DER, whether or not they verify.

    Public as ``get_unverified_chain`` from Python 3.13; in 3.10 to 3.12 only
    the private ``_sslobj`` has it, returning certificate objects. Without
    either, only the leaf is available.
    """
    public = getattr(ssl_object, "get_unverified_chain", None)
    private = getattr(getattr(ssl_object, "_sslobj", None), "get_unverified_chain", None)
    method = public or private
    if method is not None:
        certificates: list[Any] = method() or []
        return tuple(
            cert if isinstance(cert, bytes) else cert.public_bytes(_ssl.ENCODING_DER)
            for cert in certificates
        )
    leaf = ssl_object.getpeercert(binary_form=True)
    return (leaf,) if leaf else ()


def unattempted(
    address: str, sni: str, port: int, status: SmtpStatus, error: str = ""
) -> SessionResult:
    """A result for an address no packet was sent to (blocked, skipped)."""
    return SessionResult(address=address, port=port, sni=sni, status=status, error=error)


async def run_session(
    address: str,
    sni: str,
    settings: SessionSettings,
    context: ssl.SSLContext,
    *,
    connecting: Callable[[], None] = lambda: None,
    clock: Callable[[], float] = time.perf_counter,
) -> SessionResult:
    """Probe ``address`` (an IPv4 or IPv6 literal) on ``settings.port``.

    ``sni`` is the TLSA base domain sent as SNI (none if empty); ``context``
    comes from ``client_context()``; ``connecting`` is called just before
    each connect is sent, with no await between (the pacing's ``began``);
    ``clock`` measures the timings and the session deadline, in seconds.
    """
    return await _Session(address, sni, settings, context, clock, connecting).run()


class _Stop(Exception):
    """Ends a session early with an outcome; never leaves this module."""

    def __init__(self, status: SmtpStatus, error: str) -> None:
        super().__init__(status, error)
        self.status = status
        self.error = error


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLError):
        return _SSL_SOURCE_SUFFIX.sub("", str(exc)) or type(exc).__name__
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _sni(name: str) -> str | None:
    name = names.relative(name)
    if not name:
        return None
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    return None  # an address is never sent as SNI (RFC 6066 section 3)


class _Session:
    """The state of one run_session call."""

    __slots__ = (
        "address",
        "chain",
        "cipher",
        "client",
        "clock",
        "connect_ms",
        "connecting",
        "context",
        "deadline",
        "reader",
        "settings",
        "sni",
        "started",
        "tls_ms",
        "tls_version",
        "writer",
    )

    def __init__(
        self,
        address: str,
        sni: str,
        settings: SessionSettings,
        context: ssl.SSLContext,
        clock: Callable[[], float],
        connecting: Callable[[], None],
    ) -> None:
        self.address = address
        self.connecting = connecting
        self.sni = sni
        self.settings = settings
        self.context = context
        self.clock = clock
        self.started = clock()
        self.deadline = self.started + settings.session_deadline
        self.client = SmtpClient(settings.ehlo_name)
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.connect_ms: float | None = None
        self.tls_ms: float | None = None
        self.tls_version = ""
        self.cipher = ""
        self.chain: tuple[bytes, ...] = ()

    async def run(self) -> SessionResult:
        try:
            try:
                status, error = await self._converse()
                await self._close()
            except _Stop as stop:
                status, error = stop.status, stop.error
            except Exception as exc:
                # Not foreseen, yet still an outcome: the scan must go on.
                status, error = SmtpStatus.PROTOCOL_ERROR, f"unexpected {_describe(exc)}"
        finally:
            # After a timeout, a failed handshake or a cancellation there is no
            # one to say goodbye to: drop the connection at once.
            self._abort()
        return SessionResult(
            address=self.address,
            port=self.settings.port,
            sni=self.sni,
            status=status,
            error=error,
            transcript=self.client.transcript,
            tls_version=self.tls_version,
            cipher=self.cipher,
            chain=self.chain,
            connect_ms=self.connect_ms,
            tls_ms=self.tls_ms,
            total_ms=self._ms_since(self.started),
        )

    async def _converse(self) -> tuple[SmtpStatus, str]:
        try:
            ipaddress.ip_address(self.address)
        except ValueError:
            return SmtpStatus.SKIPPED, f"not an IP address: {self.address!r}"
        reader, writer = await self._connect()
        events: deque[Event] = deque()
        while True:
            if not events:
                data = await self._read(reader)
                events.extend(self.client.receive_data(data) if data else self.client.receive_eof())
                continue
            event = events.popleft()
            if isinstance(event, Send):
                await self._write(writer, event.data)
            elif isinstance(event, ReadyForTls):
                events.extend(await self._start_tls(reader, writer))
            elif isinstance(event, Done):
                if self.client.phase is Phase.QUIT:
                    await self._await_quit_reply(reader)
                return event.status, event.error

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        wait = LocalWait()
        while True:
            limit, why = self._limit(self.settings.connect_timeout)
            try:
                async with asyncio.timeout(limit):
                    # For an IP literal, asyncio sends the connect before its
                    # first await: the pacing's start is the connect's.
                    self.connecting()
                    reader, writer = await asyncio.open_connection(
                        self.address, self.settings.port, limit=_STREAM_LIMIT
                    )
                break
            except TimeoutError:
                raise _Stop(SmtpStatus.CONNECT_TIMEOUT, f"no connection within {why}") from None
            except ConnectionRefusedError:
                raise _Stop(SmtpStatus.CONNECT_REFUSED, "connection refused") from None
            except OSError as exc:
                if not is_local_exhaustion(exc):
                    # Unreachable networks and hosts end here too: no status is closer.
                    raise _Stop(
                        SmtpStatus.CONNECT_REFUSED, f"connect failed: {_describe(exc)}"
                    ) from None
            # No descriptor (EMFILE, ENFILE) or socket memory left here
            # (scanner.fdlimit): nothing reached the server, which is not at
            # fault. Wait for other sessions to close theirs, and start this
            # session's clock again: the wait was ours, not the server's.
            await wait()
            self.started = self.clock()
            self.deadline = self.started + self.settings.session_deadline
        self.reader, self.writer = reader, writer
        self.connect_ms = self._ms_since(self.started)
        return reader, writer

    async def _read(self, reader: asyncio.StreamReader) -> bytes:
        limit, why = self._limit(self.settings.read_timeout)
        try:
            async with asyncio.timeout(limit):
                return await reader.read(_READ_CHUNK)
        except TimeoutError:
            raise _Stop(
                SmtpStatus.IO_TIMEOUT,
                f"nothing within {why} waiting for {self.client.phase.awaited}",
            ) from None
        except ssl.SSLError as exc:
            raise _Stop(
                SmtpStatus.TLS_ERROR, f"TLS failed after the handshake: {_describe(exc)}"
            ) from None
        except OSError:
            # A reset is an end of the conversation like any other close.
            return b""

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        limit, why = self._limit(self.settings.read_timeout)
        try:
            async with asyncio.timeout(limit):
                writer.write(data)
                await writer.drain()
        except TimeoutError:
            if self.client.outcome is None:
                raise _Stop(SmtpStatus.IO_TIMEOUT, f"could not send within {why}") from None
        except OSError as exc:
            # The QUIT that follows an outcome is courtesy; its failure changes nothing.
            if self.client.outcome is None:
                raise _Stop(
                    SmtpStatus.PROTOCOL_ERROR, f"connection lost while sending: {_describe(exc)}"
                ) from None

    async def _start_tls(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> list[Event]:
        unread = _buffered(reader)
        if unread:
            # Plaintext already in the stream's buffer would be read as the first
            # words over TLS; the client turns it into a protocol error.
            return self.client.receive_data(await reader.read(unread))
        limit, why = self._limit(self.settings.read_timeout)
        started = self.clock()
        try:
            async with asyncio.timeout(limit):
                # asyncio's own handshake timeout raises a bare ConnectionAbortedError;
                # keep it out of the way so that ours decides.
                await writer.start_tls(
                    self.context,
                    server_hostname=_sni(self.sni),
                    ssl_handshake_timeout=limit + 10.0,
                )
        except TimeoutError:
            raise _Stop(SmtpStatus.IO_TIMEOUT, f"TLS handshake not done within {why}") from None
        except ssl.SSLError as exc:
            raise _Stop(SmtpStatus.TLS_ERROR, _describe(exc)) from None
        except OSError as exc:
            raise _Stop(
                SmtpStatus.TLS_ERROR, f"{LOST_IN_TLS_HANDSHAKE}: {_describe(exc)}"
            ) from None
        self.tls_ms = (self.clock() - started) * 1000.0
        ssl_object = writer.get_extra_info("ssl_object")
        if isinstance(ssl_object, ssl.SSLObject):
            self.tls_version = ssl_object.version() or ""
            cipher = ssl_object.cipher()
            self.cipher = cipher[0] if cipher else ""
            self.chain = peer_chain(ssl_object)
        return self.client.tls_established()

    async def _await_quit_reply(self, reader: asyncio.StreamReader) -> None:
        limit = min(self.settings.quit_timeout, self.deadline - self.clock())
        if limit <= 0:
            return
        try:
            async with asyncio.timeout(limit):
                while self.client.phase is Phase.QUIT:
                    data = await reader.read(_READ_CHUNK)
                    if data:
                        self.client.receive_data(data)
                    else:
                        self.client.receive_eof()
        except (TimeoutError, OSError):
            pass

    async def _close(self) -> None:
        writer = self.writer
        if writer is None:
            return
        writer.close()
        try:
            async with asyncio.timeout(self.settings.quit_timeout):
                await writer.wait_closed()
        except (TimeoutError, OSError):
            pass  # _abort() cuts it off

    def _abort(self) -> None:
        writer = self.writer
        if writer is not None:
            writer.transport.abort()
            self.writer = None

    def _limit(self, timeout: float) -> tuple[float, str]:
        """The time left for one step, and how to explain running out of it."""
        remaining = self.deadline - self.clock()
        if remaining < timeout:
            return max(remaining, 0.0), (
                f"the session deadline of {self.settings.session_deadline:g} s"
            )
        return timeout, f"{timeout:g} s"

    def _ms_since(self, start: float) -> float:
        return (self.clock() - start) * 1000.0


def _buffered(reader: asyncio.StreamReader) -> int:
    """Bytes received but not yet read from a stream.

    StreamReader has no public way to ask; its ``_buffer`` has held them since
    Python 3.4, and uvloop uses the same StreamReader.
    """
    buffer = getattr(reader, "_buffer", None)
    return len(buffer) if buffer is not None else 0
