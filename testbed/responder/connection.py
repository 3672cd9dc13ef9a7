"""What every responder connection shares, whatever its listener's behaviour:
the set of open connections closed at shutdown, the totals reported at exit,
the record of each connection in the connection log (testbed.connlog), and
the silent host that accepts a connection and never speaks.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import cast

from testbed.connlog import ConnectionLog, Outcome, stronger


@dataclass(slots=True)
class Counters:
    """Totals reported when the responder exits."""

    connections: int = 0
    handshakes: int = 0
    handshake_failures: int = 0
    resets: int = 0
    over_limit: int = 0


class Connections:
    """The open connections of the process, closed at shutdown, and the log
    they are recorded in."""

    def __init__(self, log: ConnectionLog | None = None) -> None:
        self.open: set[Connection] = set()
        self.counters = Counters()
        self.log = log

    def abort_all(self) -> None:
        for connection in list(self.open):
            connection.shutdown()
        self.open.clear()


class Connection(asyncio.Protocol):
    """What every connection does: take part in the open set and the
    counters, and be recorded in the connection log when it starts and ends."""

    def __init__(self, connections: Connections, server: str, outcome: Outcome) -> None:
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


class SilentProtocol(Connection):
    """Accepts the connection, discards whatever arrives, never writes."""

    def __init__(self, connections: Connections, server: str, timeout: float) -> None:
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
