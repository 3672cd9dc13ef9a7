"""The testbed's mail hosts: one asyncio process answering SMTP on port 25 of
every listener address (RFC 5321) and upgrading to TLS on STARTTLS (RFC 3207).

Each address behaves as its ``Listener`` says (testbed.model): a normal
STARTTLS host, a host that does not offer STARTTLS, one that answers STARTTLS
with 454, or one that accepts the connection and never speaks. The certificate
chain presented depends on the destination address and on the SNI name the
client sends (RFC 6066 section 3), so one process can play thousands of hosts.
The responder never accepts mail: MAIL, RCPT and DATA are refused. The replies
are testbed.dialogue, the TLS contexts testbed.tlscontexts.

Run as ``python -m testbed.responder CONFIG.json [--ready-file PATH]``; the
configuration is written by ``write_config``.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import logging
import os
import re
import resource
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import uvloop

from testbed.dialogue import Action, Dialogue
from testbed.model import Behavior, Listener
from testbed.tlscontexts import TlsContexts, chain_paths

LOG = logging.getLogger("testbed.responder")

CONFIG_VERSION = 1
DEFAULT_HOSTNAME = "responder.danescan-testbed.test"
# Exit status for a configuration the responder refuses to serve.
EXIT_CONFIG = 2
# Exit status when the configuration is fine but the sockets cannot be bound.
EXIT_BIND = 1
# File descriptors kept free beyond the listeners, for connections, the PKI
# files read during handshakes and the interpreter itself.
FD_RESERVE = 64
LISTEN_BACKLOG = 1024
# Chain ids become file names under the PKI folder: no separators, no "..".
_CHAIN_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*\Z")
_LOOPBACK_V4 = ipaddress.IPv4Network("127.0.0.0/8")
_LOOPBACK_V6 = ipaddress.IPv6Address("::1")


class ResponderError(Exception):
    """The configuration cannot be served (reported, exit status 2)."""


@dataclass(frozen=True, slots=True)
class ResponderConfig:
    """Everything the responder process needs; see ``write_config``."""

    listeners: tuple[Listener, ...]
    pki_dir: Path
    port: int = 25
    hostname: str = DEFAULT_HOSTNAME
    # A client that sends nothing for this long is told 421 and disconnected.
    idle_timeout: float = 30.0
    # A silent host keeps an accepted connection open this long, then closes it.
    silent_timeout: float = 60.0
    # Longest command line (RFC 5321 section 4.5.3.1.4 allows 512 octets).
    max_line: int = 4096
    # Chain contexts kept loaded; each costs about 30 KB and 1.5 ms to build.
    context_cache_size: int = 4096

    def __post_init__(self) -> None:
        validate_config(self)

    def chain_paths(self, chain_id: str) -> tuple[Path, Path]:
        """The certificate chain (leaf first) and private key files of a chain id."""
        return chain_paths(self.pki_dir, chain_id)


def is_loopback(address: str) -> bool:
    """True for an IPv4 address in 127.0.0.0/8 or the IPv6 address ::1."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv4Address):
        return ip in _LOOPBACK_V4
    return ip == _LOOPBACK_V6


def validate_config(config: ResponderConfig) -> None:
    """Raise ResponderError unless every listener can be served safely.

    Addresses outside loopback are refused so that a mistaken configuration can
    never expose a fake mail host on a real network.
    """
    if not 0 < config.port < 65536:
        raise ResponderError(f"port {config.port} is out of range")
    hostname = config.hostname
    if not hostname or not hostname.isascii() or any(c.isspace() for c in hostname):
        raise ResponderError(f"hostname {hostname!r} is empty, not ASCII or has white space")
    if min(config.idle_timeout, config.silent_timeout) <= 0 or config.max_line < 512:
        raise ResponderError("timeouts must be positive and max_line at least 512")
    if config.context_cache_size < 1:
        raise ResponderError("context_cache_size must be at least 1")
    seen: set[str] = set()
    for listener in config.listeners:
        address = listener.address
        if not is_loopback(address):
            raise ResponderError(
                f"refusing to listen on {address!r}: only 127.0.0.0/8 and ::1 are allowed"
            )
        canonical = str(ipaddress.ip_address(address))
        if canonical in seen:
            raise ResponderError(f"address {address} is listed twice")
        seen.add(canonical)
        chain_ids = [*listener.chains.values()]
        if listener.default_chain is not None:
            chain_ids.append(listener.default_chain)
        for chain_id in chain_ids:
            if not _CHAIN_ID.match(chain_id):
                raise ResponderError(f"{address}: chain id {chain_id!r} is not a plain file stem")
        if listener.behavior is Behavior.STARTTLS and listener.default_chain is None:
            raise ResponderError(f"{address}: a STARTTLS listener needs a default_chain")


def missing_chain_files(config: ResponderConfig) -> list[Path]:
    """The certificate and key files the configuration names that do not exist."""
    chain_ids: set[str] = set()
    for listener in config.listeners:
        chain_ids.update(listener.chains.values())
        if listener.default_chain is not None:
            chain_ids.add(listener.default_chain)
    return [
        path
        for chain_id in sorted(chain_ids)
        for path in config.chain_paths(chain_id)
        if not path.is_file()
    ]


def write_config(
    path: Path,
    listeners: Sequence[Listener],
    *,
    pki_dir: Path,
    port: int = 25,
    hostname: str = DEFAULT_HOSTNAME,
    idle_timeout: float = 30.0,
    silent_timeout: float = 60.0,
) -> None:
    """Validate and write the responder configuration as JSON (atomically)."""
    config = ResponderConfig(
        listeners=tuple(listeners),
        pki_dir=pki_dir.resolve(),
        port=port,
        hostname=hostname,
        idle_timeout=idle_timeout,
        silent_timeout=silent_timeout,
    )
    document = {
        "version": CONFIG_VERSION,
        "pki_dir": str(config.pki_dir),
        "port": config.port,
        "hostname": config.hostname,
        "idle_timeout": config.idle_timeout,
        "silent_timeout": config.silent_timeout,
        "listeners": [
            {
                "address": listener.address,
                "behavior": listener.behavior.value,
                "chains": listener.chains,
                "default_chain": listener.default_chain,
            }
            for listener in config.listeners
        ],
    }
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(json.dumps(document, separators=(",", ":")))
    os.replace(temporary, path)


def load_config(path: Path) -> ResponderConfig:
    """Read a configuration written by ``write_config``; raise ResponderError if invalid."""
    try:
        document = json.loads(path.read_text())
        if document.get("version") != CONFIG_VERSION:
            raise ResponderError(f"{path}: unsupported config version {document.get('version')}")
        listeners = tuple(
            Listener(
                address=str(item["address"]),
                behavior=Behavior(item["behavior"]),
                chains={str(k): str(v) for k, v in item["chains"].items()},
                default_chain=None if item["default_chain"] is None else str(item["default_chain"]),
            )
            for item in document["listeners"]
        )
        return ResponderConfig(
            listeners=listeners,
            pki_dir=Path(document["pki_dir"]),
            port=int(document["port"]),
            hostname=str(document["hostname"]),
            idle_timeout=float(document["idle_timeout"]),
            silent_timeout=float(document["silent_timeout"]),
        )
    except (OSError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ResponderError(f"{path}: cannot read responder config: {exc!r}") from exc


@dataclass(slots=True)
class Counters:
    """Totals reported when the responder exits."""

    connections: int = 0
    handshakes: int = 0
    handshake_failures: int = 0


# Commands in error before the connection is dropped, as Postfix does.
MAX_ERRORS = 20


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


class _Connections:
    """The open connections of the process, closed at shutdown."""

    def __init__(self) -> None:
        self.open: set[asyncio.Transport] = set()
        self.counters = Counters()

    def abort_all(self) -> None:
        for transport in list(self.open):
            transport.abort()
        self.open.clear()


class SilentProtocol(asyncio.Protocol):
    """Accepts the connection, discards whatever arrives, never writes."""

    def __init__(self, connections: _Connections, timeout: float) -> None:
        self._connections = connections
        self._timeout = timeout
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.open.add(self._transport)
        self._connections.counters.connections += 1
        self._timer = asyncio.get_running_loop().call_later(self._timeout, transport.close)

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._connections.open.discard(self._transport)


class SmtpProtocol(asyncio.Protocol):
    """One SMTP connection: line framing, replies, the STARTTLS upgrade."""

    def __init__(
        self,
        connections: _Connections,
        config: ResponderConfig,
        dialogue: Dialogue,
        tls_context: Callable[[], ssl.SSLContext],
    ) -> None:
        self._connections = connections
        self._config = config
        self._dialogue = dialogue
        self._tls_context = tls_context
        self._buffer = b""
        self._tls_active = False
        # While the handshake runs, bytes delivered over TLS wait here.
        self._upgrading = False
        self._closing = False
        self._errors = 0
        self._upgrade: asyncio.Task[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self._transport = cast(asyncio.Transport, transport)
        self._connections.open.add(self._transport)
        self._connections.counters.connections += 1
        self._watchdog = _Watchdog(
            asyncio.get_running_loop(), self._config.idle_timeout, self._on_idle
        )
        self._transport.write(self._dialogue.banner)

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        self._watchdog.touch()
        self._buffer += data
        if not self._upgrading:
            self._process()
        if len(self._buffer) > self._config.max_line:
            self._close_with(b"500 5.5.2 Line too long\r\n")

    def eof_received(self) -> bool | None:
        return None  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._watchdog.cancel()
        self._connections.open.discard(self._transport)

    def _process(self) -> None:
        replies: list[bytes] = []
        action = Action.CONTINUE
        while action is Action.CONTINUE:
            line, newline, rest = self._buffer.partition(b"\n")
            if not newline:
                break
            self._buffer = rest
            reply = self._dialogue.respond(line, tls_active=self._tls_active)
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
            # seen the 220: reading resumes under TLS inside start_tls().
            self._transport.pause_reading()
        if replies:
            self._transport.write(b"".join(replies))
        if action is Action.STARTTLS:
            self._upgrade = asyncio.get_running_loop().create_task(self._start_tls())
        elif action is Action.CLOSE:
            self._closing = True
            self._transport.close()

    async def _start_tls(self) -> None:
        loop = asyncio.get_running_loop()
        counters = self._connections.counters
        try:
            context = self._tls_context()
            transport = await loop.start_tls(
                self._transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=self._config.idle_timeout,
            )
        except (OSError, ssl.SSLError, ValueError, ConnectionError, TimeoutError):
            counters.handshake_failures += 1
            self._closing = True
            self._transport.abort()
            return
        if transport is None or self._closing:
            counters.handshake_failures += 1
            return
        counters.handshakes += 1
        self._connections.open.discard(self._transport)
        self._connections.open.add(transport)
        self._transport = transport
        self._tls_active = True
        self._upgrading = False
        self._process()

    def _on_idle(self) -> None:
        self._close_with(f"421 4.4.2 {self._config.hostname} Timeout\r\n".encode("ascii"))

    def _close_with(self, reply: bytes) -> None:
        if self._closing:
            return
        self._closing = True
        if not self._upgrading:
            self._transport.write(reply)
        self._transport.close()


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
    connections = _Connections()
    contexts = TlsContexts(config.pki_dir, config.context_cache_size)
    servers: list[asyncio.Server] = []
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
    return connections.counters


def _protocol_factory(
    listener: Listener,
    config: ResponderConfig,
    connections: _Connections,
    contexts: TlsContexts,
) -> Callable[[], asyncio.Protocol]:
    if listener.behavior is Behavior.SILENT:
        return lambda: SilentProtocol(connections, config.silent_timeout)
    dialogue = Dialogue(config.hostname, listener.behavior)

    def tls_context() -> ssl.SSLContext:
        return contexts.for_listener(listener)

    return lambda: SmtpProtocol(connections, config, dialogue, tls_context)


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
    parser.add_argument("config", type=Path, help="JSON written by testbed.responder.write_config")
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
        "stopped: %d connections, %d handshakes, %d failed handshakes",
        counters.connections,
        counters.handshakes,
        counters.handshake_failures,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
