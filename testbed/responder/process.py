"""The responder process: bind every listener's socket, serve them until
stopped, and report the totals (``python -m testbed.responder``; the command
line and readiness are testbed.daemon's)."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from testbed import daemon
from testbed.connlog import FLUSH_INTERVAL, ConnectionLog
from testbed.dialogue import Dialogue
from testbed.model import Behavior, Listener
from testbed.pushback import ClientPushback
from testbed.responder.connection import Connections, Counters, SilentProtocol
from testbed.responder.smtp import Host, SmtpProtocol
from testbed.responder_config import (
    ResponderConfig,
    ResponderError,
    load_config,
    missing_chain_files,
)
from testbed.tlscontexts import TlsContexts

LOG = logging.getLogger("testbed.responder")

# File descriptors kept free beyond the listeners, for connections, the PKI
# files read during handshakes and the interpreter itself.
FD_RESERVE = 64
LISTEN_BACKLOG = 1024


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
    stop = daemon.stop_event()
    started = time.perf_counter()
    sockets = bind_listeners((listener.address for listener in config.listeners), config.port)
    log = None if config.connection_log is None else ConnectionLog(config.connection_log)
    connections = Connections(log)
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
        status: dict[str, object] = {
            "pid": os.getpid(),
            "listeners": len(config.listeners),
            "port": config.port,
            "startup_seconds": round(elapsed, 3),
        }
        daemon.announce_ready(ready_file, status)
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
    connections: Connections,
    contexts: TlsContexts,
) -> Callable[[], asyncio.Protocol]:
    if listener.behavior is Behavior.SILENT:
        # A host that never speaks cannot push back: it ignores its pushback.
        return lambda: SilentProtocol(connections, listener.address, config.silent_timeout)
    clients = None if listener.pushback.is_default else ClientPushback(listener.pushback)
    host = Host(
        listener,
        Dialogue(config.hostname, listener.behavior, listener.tls_extensions),
        contexts,
        clients,
    )
    return lambda: SmtpProtocol(connections, config, host)


def stop_responder(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """Stop a responder started as a subprocess: SIGTERM, then SIGKILL after ``timeout`` s."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    # The package's docstring describes the responder as a whole.
    description = sys.modules["testbed.responder"].__doc__
    return daemon.run(argv, "responder", description, _load, serve, _report, (ResponderError,))


def _load(path: Path) -> ResponderConfig:
    """The configuration, refused unless every chain file is there and every
    listener fits under the open-file limit."""
    config = load_config(path)
    missing = missing_chain_files(config)
    if missing:
        shown = ", ".join(str(item) for item in missing[:5])
        raise ResponderError(f"{len(missing)} chain files missing: {shown}")
    raise_open_file_limit(len(config.listeners) + FD_RESERVE)
    return config


def _report(counters: Counters) -> None:
    LOG.info(
        "stopped: %d connections, %d handshakes, %d failed handshakes, %d reset, %d over limit",
        counters.connections,
        counters.handshakes,
        counters.handshake_failures,
        counters.resets,
        counters.over_limit,
    )
