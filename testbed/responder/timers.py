"""The two timers of a responder connection: the idle watchdog behind the
421 timeout reply (RFC 5321 section 4.5.3.2 names the server's timeouts), and
the tarpit's stutter that writes replies a byte at a time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class Watchdog:
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


class Stutter:
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
