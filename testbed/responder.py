"""The testbed's mail hosts: one asyncio process answering SMTP on port 25 of
every listener address (RFC 5321) and upgrading to TLS on STARTTLS (RFC 3207).

Each address behaves as its ``Listener`` says (testbed.model): a normal
STARTTLS host, a host that does not offer STARTTLS, one that answers STARTTLS
with 454, one that accepts the connection and never speaks, a tarpit that
stutters every reply a byte at a time, or one whose TLS handshakes are all
reset. The certificate chain presented depends on the destination address and
on the SNI name the client sends (RFC 6066 section 3), so one process can play
thousands of hosts. The responder never accepts mail: MAIL, RCPT and DATA are
refused.

A listener's ``Pushback`` adds what real mail servers do to the clients they
distrust: a greeting delay, greylisting (450 to EHLO and HELO, RFC 5321
section 4.2.1), per-client connection limits (421 and close, section 3.8), a
delay before the TLS server flight and the reset of each client's first
handshake. The per-client state behind these is testbed.pushback, the replies
are testbed.dialogue, the TLS contexts testbed.tlscontexts; every connection
is recorded in the configuration's ``connection_log`` (testbed.connlog).

Run as ``python -m testbed.responder CONFIG.json [--ready-file PATH]``; the
configuration is written by testbed.responder_config.write_config.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import signal
import socket
import ssl
import struct
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import uvloop

from testbed.connlog import FLUSH_INTERVAL, ConnectionLog, Outcome, stronger
from testbed.dialogue import Action, Dialogue
from testbed.model import Behavior, Listener
from testbed.pushback import ClientPushback
from testbed.responder_config import (
    ResponderConfig,
    ResponderError,
    load_config,
    missing_chain_files,
)
from testbed.tlscontexts import TlsContexts

LOG = logging.getLogger("testbed.responder")

# Exit status for a configuration the responder refuses to serve.
EXIT_CONFIG = 2
# Exit status when the configuration is fine but the sockets cannot be bound.
EXIT_BIND = 1
# File descriptors kept free beyond the listeners, for connections, the PKI
# files read during handshakes and the interpreter itself.
FD_RESERVE = 64
LISTEN_BACKLOG = 1024


@dataclass(slots=True)
class Counters:
    """Totals reported when the responder exits."""

    connections: int = 0
    handshakes: int = 0
    handshake_failures: int = 0
    resets: int = 0
    over_limit: int = 0


# Commands in error before the connection is dropped, as Postfix does.
MAX_ERRORS = 20
# SO_LINGER on, with a zero timeout: close() sends an RST instead of a FIN.
_LINGER_RESET = struct.pack("ii", 1, 0)


class _Watchdog:
    """Calls ``expire`` once nothing has happened for ``timeout`` seconds.

    One timer per connection, re-armed only when it fires: touching it on
    every line costs a clock read instead of cancelling and creating a timer.
    """

    def __init__(
        self, loop: asyncio.AbstractEventLoop, timeout: float, expire: Callable[[], None]
    ) -> None:
        self._loop = loop
        self._timeout = timeout
        self._expire = expire
        self._last = loop.time()
        self._handle = loop.call_later(timeout, self._check)

    def touch(self) -> None:
        self._last = self._loop.time()

    def cancel(self) -> None:
        self._handle.cancel()

    def _check(self) -> None:
        remaining = self._last + self._timeout - self._loop.time()
        if remaining > 0:
            self._handle = self._loop.call_later(remaining, self._check)
        else:
            self._expire()


class _Stutter:
    """Writes a connection's replies a byte at a time, ``interval`` seconds
    apart, as OpenBSD spamd does to the hosts it tarpits.

    It holds only the bytes not yet written; ``drained`` is called each time
    the last of them has gone.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        interval: float,
        write: Callable[[bytes], None],
        drained: Callable[[], None],
    ) -> None:
        self._loop = loop
        self._interval = interval
        self._write = write
        self._drained = drained
        self._pending = bytearray()
        self._handle: asyncio.TimerHandle | None = None
        self._next = loop.time()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def send(self, data: bytes) -> None:
        self._pending += data
        if self._handle is None and self._pending:
            self._handle = self._loop.call_at(max(self._next, self._loop.time()), self._step)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self._pending.clear()

    def _step(self) -> None:
        self._handle = None
        byte = bytes(self._pending[:1])
        del self._pending[:1]
        self._next = self._loop.time() + self._interval
        self._write(byte)
        if self._pending:
            self._handle = self._loop.call_at(self._next, self._step)
        else:
            self._drained()


class _Connections:
    """The open connections of the process, closed at shutdown, and the log
    they are recorded in."""

    def __init__(self, log: ConnectionLog | None = None) -> None:
        self.open: set[_Connection] = set()
        self.counters = Counters()
        self.log = log

    def abort_all(self) -> None:
        for connection in list(self.open):
            connection.shutdown()
        self.open.clear()


class _Connection(asyncio.Protocol):
    """What every connection does: take part in the open set and the
    counters, and be recorded in the connection log when it starts and ends."""

    def __init__(self, connections: _Connections, server: str, outcome: Outcome) -> None:
        self._connections = connections
        self._server = server
        self._outcome = outcome
        self._client = ""
        self._sni = ""
        self._log_id = 0
        self._finished = False

    def _accept(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._client = str(peer[0]) if peer else ""
        self._connections.open.add(self)
        self._connections.counters.connections += 1
        log = self._connections.log
        if log is not None:
            self._log_id = log.opened(self._server, self._client, time.time())

    def _note(self, outcome: Outcome) -> None:
        self._outcome = stronger(self._outcome, outcome)

    def _finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        self._connections.open.discard(self)
        log = self._connections.log
        if log is not None:
            log.closed(self._log_id, time.time(), self._outcome, self._sni)

    def shutdown(self) -> None:
        """The responder is stopping: record the connection and drop it."""
        self._note(Outcome.ABORTED)
        self._finish()
        self._transport.abort()


class SilentProtocol(_Connection):
    """Accepts the connection, discards whatever arrives, never writes."""

    def __init__(self, connections: _Connections, server: str, timeout: float) -> None:
        super().__init__(connections, server, Outcome.SILENT)
        self._timeout = timeout
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._accept(transport)
        self._timer = asyncio.get_running_loop().call_later(self._timeout, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._finish()


@dataclass(frozen=True, slots=True)
class _Host:
    """What the connections to one listener share."""

    listener: Listener
    dialogue: Dialogue
    contexts: TlsContexts
    # The per-client state of the listener's pushback; None when it has none.
    clients: ClientPushback | None

    def tls_context(self) -> ssl.SSLContext:
        return self.contexts.for_listener(self.listener)


class SmtpProtocol(_Connection):
    """One SMTP connection: line framing, replies, pushback, the STARTTLS upgrade."""

    def __init__(self, connections: _Connections, config: ResponderConfig, host: _Host) -> None:
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
        self._watchdog: _Watchdog | None = None
        self._stutter = (
            _Stutter(self._loop, config.tarpit_interval, self._write_byte, self._on_drained)
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
        self._watchdog = _Watchdog(self._loop, self._config.idle_timeout, self._on_idle)
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


# --- the process ----------------------------------------------------------------


def raise_open_file_limit(needed: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard limit; error if ``needed`` does not fit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(needed, 1 << 20)
    resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    if needed > target:
        raise ResponderError(
            f"{needed} file descriptors needed but the open-file limit is {target}: "
            "split the listeners over more responder processes"
        )
    return target


def bind_listeners(addresses: Iterable[str], port: int) -> list[socket.socket]:
    """Listening, non-blocking sockets on port ``port`` of every address.

    Sockets are made directly rather than through create_server(host=...) to
    skip name resolution: 18,000 listeners are bound and serving in 0.4-0.7 s.
    """
    sockets: list[socket.socket] = []
    try:
        for address in addresses:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind((address, port))
            except OSError as exc:
                raise OSError(
                    exc.errno, f"cannot bind {address} port {port}: {exc.strerror}"
                ) from exc
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def serve(config: ResponderConfig, ready_file: Path | None = None) -> Counters:
    """Serve every listener until SIGTERM or SIGINT; return the connection totals."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    started = time.perf_counter()
    sockets = bind_listeners((listener.address for listener in config.listeners), config.port)
    log = None if config.connection_log is None else ConnectionLog(config.connection_log)
    connections = _Connections(log)
    contexts = TlsContexts(config.pki_dir, config.context_cache_size)
    servers: list[asyncio.Server] = []
    flusher = None if log is None else loop.create_task(_flush_periodically(log))
    try:
        for listener, sock in zip(config.listeners, sockets, strict=True):
            servers.append(
                await loop.create_server(
                    _protocol_factory(listener, config, connections, contexts),
                    sock=sock,
                    backlog=LISTEN_BACKLOG,
                )
            )
        elapsed = time.perf_counter() - started
        _announce_ready(config, elapsed, ready_file)
        await stop.wait()
    finally:
        for server in servers:
            server.close()
        for sock in sockets[len(servers) :]:
            sock.close()
        connections.abort_all()
        if flusher is not None:
            flusher.cancel()
        if log is not None:
            log.close()
    return connections.counters


async def _flush_periodically(log: ConnectionLog) -> None:
    # A reader of the log lags the responder by at most FLUSH_INTERVAL.
    while True:
        await asyncio.sleep(FLUSH_INTERVAL)
        log.flush()


def _protocol_factory(
    listener: Listener,
    config: ResponderConfig,
    connections: _Connections,
    contexts: TlsContexts,
) -> Callable[[], asyncio.Protocol]:
    if listener.behavior is Behavior.SILENT:
        # A host that never speaks cannot push back: it ignores its pushback.
        return lambda: SilentProtocol(connections, listener.address, config.silent_timeout)
    clients = None if listener.pushback.is_default else ClientPushback(listener.pushback)
    host = _Host(listener, Dialogue(config.hostname, listener.behavior), contexts, clients)
    return lambda: SmtpProtocol(connections, config, host)


def _announce_ready(config: ResponderConfig, elapsed: float, ready_file: Path | None) -> None:
    status = {
        "pid": os.getpid(),
        "listeners": len(config.listeners),
        "port": config.port,
        "startup_seconds": round(elapsed, 3),
    }
    if ready_file is not None:
        temporary = ready_file.with_name(f".{ready_file.name}.tmp")
        temporary.write_text(json.dumps(status) + "\n")
        os.replace(temporary, ready_file)
    print(f"ready {json.dumps(status)}", flush=True)


def stop_responder(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a responder started as a subprocess: SIGTERM, then SIGKILL after ``timeout`` s."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m testbed.responder", description="STARTTLS responder of the testbed"
    )
    parser.add_argument("config", type=Path, help="JSON written by responder_config.write_config")
    parser.add_argument(
        "--ready-file", type=Path, help="written once every listener is bound and serving"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="responder: %(message)s", stream=sys.stderr)
    try:
        config = load_config(args.config)
        missing = missing_chain_files(config)
        if missing:
            shown = ", ".join(str(path) for path in missing[:5])
            raise ResponderError(f"{len(missing)} chain files missing: {shown}")
        raise_open_file_limit(len(config.listeners) + FD_RESERVE)
    except ResponderError as exc:
        LOG.error("%s", exc)
        return EXIT_CONFIG

    try:
        counters = uvloop.run(serve(config, args.ready_file))
    except OSError as exc:
        LOG.error("%s", exc)
        return EXIT_BIND
    LOG.info(
        "stopped: %d connections, %d handshakes, %d failed handshakes, %d reset, %d over limit",
        counters.connections,
        counters.handshakes,
        counters.handshake_failures,
        counters.resets,
        counters.over_limit,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
