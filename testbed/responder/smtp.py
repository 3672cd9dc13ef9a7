"""One SMTP connection of the responder (RFC 5321): line framing, the replies
of testbed.dialogue, the listener's pushback (testbed.pushback: greeting
delay, greylisting, connection limits, a delayed or reset TLS handshake) and
the STARTTLS upgrade (RFC 3207) with the TLS contexts of testbed.tlscontexts.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import struct
from dataclasses import dataclass

from testbed.connlog import Outcome
from testbed.dialogue import Action, Dialogue
from testbed.model import Behavior, Listener
from testbed.pushback import ClientPushback
from testbed.responder.connection import Connection, Connections
from testbed.responder.timers import Stutter, Watchdog
from testbed.responder_config import ResponderConfig
from testbed.tlscontexts import TlsContexts

# Commands in error before the connection is dropped, as Postfix does.
MAX_ERRORS = 20
# SO_LINGER on, with a zero timeout: close() sends an RST instead of a FIN.
_LINGER_RESET = struct.pack("ii", 1, 0)


@dataclass(frozen=True, slots=True)
class Host:
    """What the connections to one listener share."""

    listener: Listener
    dialogue: Dialogue
    contexts: TlsContexts
    # The per-client state of the listener's pushback; None when it has none.
    clients: ClientPushback | None

    def tls_context(self) -> ssl.SSLContext:
        return self.contexts.for_listener(self.listener)


class SmtpProtocol(Connection):
    """One SMTP connection: line framing, replies, pushback, the STARTTLS upgrade."""

    def __init__(self, connections: Connections, config: ResponderConfig, host: Host) -> None:
        tarpit = host.listener.behavior is Behavior.TARPIT
        super().__init__(
            connections, host.listener.address, Outcome.TARPIT if tarpit else Outcome.NO_TLS
        )
        self._config = config
        self._host = host
        self._dialogue = host.dialogue
        self._pushback = host.listener.pushback
        self._loop = asyncio.get_running_loop()
        self._buffer = b""
        self._tls_active = False
        # From the 220 to STARTTLS until TLS is up: bytes delivered over TLS
        # while the handshake completes wait in the buffer.
        self._upgrading = False
        self._handshaking = False
        # The next bytes (the client's hello) are answered with an RST.
        self._reset_pending = False
        self._closing = False
        self._greeted = False
        self._admitted = False
        self._errors = 0
        # Loop time at which a new connection from this client would pass
        # greylisting; None when this one passed.
        self._greylisted_until: float | None = None
        self._upgrade: asyncio.Task[None] | None = None
        self._greeting: asyncio.TimerHandle | None = None
        self._watchdog: Watchdog | None = None
        self._stutter = (
            Stutter(self._loop, config.tarpit_interval, self._write_byte, self._on_drained)
            if tarpit
            else None
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._accept(transport)
        clients = self._host.clients
        if clients is not None:
            now = self._loop.time()
            if not clients.admit(self._client, now):
                self._connections.counters.over_limit += 1
                self._note(Outcome.OVER_LIMIT)
                self._send(self._dialogue.too_many_connections(self._client))
                self._close_when_sent()
                return
            self._admitted = True
            remaining = clients.greylist_remaining(self._client, now)
            if remaining is not None:
                self._note(Outcome.GREYLISTED)
                self._greylisted_until = now + remaining
        if self._pushback.greeting_delay > 0:
            self._greeting = self._loop.call_later(self._pushback.greeting_delay, self._greet)
        else:
            self._greet()

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        if self._reset_pending:
            self._reset(data)
            return
        if self._watchdog is not None:
            self._watchdog.touch()
        self._buffer += data
        if not self._greeted:
            # Commands sent before the greeting are answered after it; more
            # of them wait in the kernel meanwhile.
            self._transport.pause_reading()
            return
        if not self._upgrading:
            self._process()
        self._check_line_length()

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        if self._handshaking:
            self._note(Outcome.HANDSHAKE_FAILED)
        self._stop_timers()
        self._finish()

    def shutdown(self) -> None:
        self._closing = True
        self._stop_timers()
        super().shutdown()

    def _finish(self) -> None:
        if self._admitted and self._host.clients is not None:
            self._admitted = False
            self._host.clients.release(self._client)
        super()._finish()

    def _stop_timers(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
        if self._greeting is not None:
            self._greeting.cancel()
        if self._stutter is not None:
            self._stutter.cancel()

    def _greet(self) -> None:
        self._greeting = None
        self._greeted = True
        self._watchdog = Watchdog(self._loop, self._config.idle_timeout, self._on_idle)
        self._send(self._dialogue.banner)
        if self._buffer:
            self._process()
            self._check_line_length()
        self._resume()

    def _process(self) -> None:
        replies: list[bytes] = []
        action = Action.CONTINUE
        greylisted_for = None
        if self._greylisted_until is not None:
            greylisted_for = self._greylisted_until - self._loop.time()
        while action is Action.CONTINUE:
            line, newline, rest = self._buffer.partition(b"\n")
            if not newline:
                break
            self._buffer = rest
            reply = self._dialogue.respond(
                line, tls_active=self._tls_active, greylisted_for=greylisted_for
            )
            replies.append(reply.data)
            action = reply.action
            if reply.error:
                self._errors += 1
            if self._errors >= MAX_ERRORS:
                replies.append(b"421 4.7.0 Too many errors\r\n")
                action = Action.CLOSE
        if action is Action.STARTTLS:
            # RFC 3207 section 4.2: anything pipelined after STARTTLS came in
            # plaintext and must not be taken as a command sent over TLS.
            self._buffer = b""
            self._upgrading = True
            # Nothing may reach this protocol in plaintext once the client has
            # seen the 220: reading resumes under TLS inside start_tls(), or
            # to catch the hello of a handshake to be reset.
            self._transport.pause_reading()
        if replies:
            self._send(b"".join(replies))
        if action is Action.STARTTLS:
            if self._stutter is None or not self._stutter.pending:
                self._begin_upgrade()
        elif action is Action.CLOSE:
            self._close_when_sent()

    def _check_line_length(self) -> None:
        if len(self._buffer) > self._config.max_line:
            self._close_with(b"500 5.5.2 Line too long\r\n")

    # --- writing: at once, or stuttered by a tarpit

    def _send(self, data: bytes) -> None:
        if self._stutter is None:
            self._transport.write(data)
            return
        self._stutter.send(data)
        # Nothing more is read until the replies are out, so a tarpit
        # connection holds at most the replies to what one read brought.
        self._transport.pause_reading()

    def _write_byte(self, byte: bytes) -> None:
        self._transport.write(byte)
        # A client waiting for a stuttered reply is not idle.
        if self._watchdog is not None:
            self._watchdog.touch()

    def _on_drained(self) -> None:
        if self._closing:
            self._transport.close()
        elif self._upgrading:
            self._begin_upgrade()
        else:
            self._resume()

    def _resume(self) -> None:
        if self._closing or self._upgrading or not self._greeted:
            return
        if self._stutter is not None and self._stutter.pending:
            return
        self._transport.resume_reading()

    def _close_when_sent(self) -> None:
        self._closing = True
        if self._stutter is None or not self._stutter.pending:
            self._transport.close()

    # --- STARTTLS (RFC 3207)

    def _begin_upgrade(self) -> None:
        self._upgrade = self._loop.create_task(self._start_tls())

    def _resets_handshake(self) -> bool:
        if self._host.listener.behavior is Behavior.TLS_RESET:
            return True
        clients = self._host.clients
        return clients is not None and clients.resets_handshake(self._client)

    async def _start_tls(self) -> None:
        if self._pushback.tls_delay > 0:
            # The client's hello waits in the kernel meanwhile: reading is paused.
            await asyncio.sleep(self._pushback.tls_delay)
        if self._closing:
            return
        if self._resets_handshake():
            self._reset_pending = True
            self._transport.resume_reading()
            return
        counters = self._connections.counters
        self._handshaking = True
        try:
            context = self._host.tls_context()
            transport = await self._loop.start_tls(
                self._transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self._config.idle_timeout,
            )
        except (OSError, ssl.SSLError, ValueError, ConnectionError, TimeoutError):
            counters.handshake_failures += 1
            self._note(Outcome.HANDSHAKE_FAILED)
            self._closing = True
            self._transport.abort()
            return
        finally:
            self._handshaking = False
        if transport is None or self._closing:
            counters.handshake_failures += 1
            self._note(Outcome.HANDSHAKE_FAILED)
            return
        counters.handshakes += 1
        self._transport = transport
        self._sni = self._host.contexts.sni_of(transport.get_extra_info("ssl_object"))
        self._note(Outcome.TLS)
        self._tls_active = True
        self._upgrading = False
        self._process()
        self._check_line_length()

    def _reset(self, hello: bytes) -> None:
        """Answer the client's TLS hello with a TCP RST, as a broken middlebox does."""
        self._reset_pending = False
        self._closing = True
        self._sni = self._host.contexts.probe_sni(hello)
        if self._host.clients is not None:
            self._host.clients.handshake_reset(self._client)
        self._connections.counters.resets += 1
        self._note(Outcome.RESET)
        sock = self._transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
        self._transport.abort()

    def _on_idle(self) -> None:
        self._note(Outcome.TIMEOUT)
        self._close_with(f"421 4.4.2 {self._config.hostname} Timeout\r\n".encode("ascii"))

    def _close_with(self, reply: bytes) -> None:
        if self._closing:
            return
        if self._upgrading:
            # Nothing more in plaintext once the client has seen the 220.
            self._closing = True
            if self._stutter is not None:
                self._stutter.cancel()
            self._transport.close()
            return
        self._send(reply)
        self._close_when_sent()
