"""When the next connection to an address may start: no two connections to
one address begin closer than its interval (scanner.handshake.polite's
``min_interval``, or a longer one for an address that asked us to slow
down), the interval measured from when each connection really began.

A connection becomes due in three steps, shared by the SMTP handshakes and
the MTA-STS policy fetches:

- ``reserve``, before it waits for its turn (holding no connection slot):
  its place in the address's queue, so that connections waiting at once
  wake an interval apart rather than together;
- ``claim``, once it holds a connection slot: how much longer it must wait,
  or, when it is due, its start recorded in the same synchronous step, so
  that no two claims to one address pass together;
- ``began``, when its connect is really sent: the start recorded again.
  Between a claim and the connect lie other tasks' turns on the event loop
  and an HTTP client's own steps; measured from the claim alone, that time
  would shorten the gap to the next connection (a late start followed by an
  on-time one), which the server sees as two connections too close.

``hold`` keeps an address closed until a time (a back-off after a refusal).
``turn`` and ``due`` are ``reserve`` and ``claim`` with their waits slept.

Time comes in through ``clock`` and ``sleep``. Both tables are bounded (``size``
addresses, least recently used out first): an entry evicted after that many
newer connection starts is long past its interval.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable


class StartPacer:
    """One per Handshaker or Fetcher: the starts of its connections, by address."""

    __slots__ = ("_clock", "_earliest", "_queued", "_size", "_sleep")

    def __init__(
        self,
        size: int,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
    ) -> None:
        if size < 1:
            raise ValueError("size must be at least 1")
        self._size = size
        self._clock = clock
        self._sleep = sleep
        # The earliest the next connection may begin: from real starts and holds.
        self._earliest: OrderedDict[str, float] = OrderedDict()
        # Where the queue of waiting connections ends: ordering only.
        self._queued: OrderedDict[str, float] = OrderedDict()

    def reserve(self, address: str, interval: float) -> float:
        """A connection joins ``address``'s queue: how long to wait for its turn."""
        now = self._clock()
        turn = max(now, self._queued.get(address, now), self._earliest.get(address, now))
        self._put(self._queued, address, turn + interval)
        return turn - now

    def claim(self, address: str, interval: float) -> float:
        """How much longer a connection to ``address`` must wait; 0 when it
        may start now, its start then recorded."""
        now = self._clock()
        wait = self._earliest.get(address, now) - now
        if wait > 0:
            return wait
        self._put(self._earliest, address, now + interval)
        return 0.0

    async def turn(self, address: str, interval: float) -> None:
        """Join ``address``'s queue and wait for this connection's turn."""
        wait = self.reserve(address, interval)
        if wait > 0:
            await self._sleep(wait)

    async def due(self, address: str, interval: float) -> None:
        """Wait until a connection to ``address`` may start, and claim it."""
        while wait := self.claim(address, interval):
            await self._sleep(wait)

    def began(self, address: str, interval: float) -> None:
        """A connection to ``address`` is being made now."""
        self.hold(address, self._clock() + interval)

    def hold(self, address: str, until: float) -> None:
        """No connection to ``address`` starts before ``until``."""
        self._put(self._earliest, address, max(until, self._earliest.get(address, until)))

    def _put(self, table: OrderedDict[str, float], address: str, value: float) -> None:
        table[address] = value
        table.move_to_end(address)
        if len(table) > self._size:
            table.popitem(last=False)
