"""Admission: a token bucket admitting work at a steady rate with a bounded
burst, and a window bounding how much admitted work is in flight at once,
whose size the scan's flow control changes as it goes (scanner.flow).

Time comes in through ``clock`` and ``sleep`` so tests can drive it exactly.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Awaitable, Callable


class TokenBucket:
    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        # A tenth of a second's worth: smooth at high rates, never zero.
        self.burst = burst if burst is not None else max(1.0, rate / 10)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.burst
        self._last = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now

    async def take(self) -> None:
        """Wait until one token is available and take it."""
        self._refill()
        # The epsilon keeps float rounding (a clock that advanced by less than
        # one ulp) from turning the wait into an endless series of tiny sleeps.
        while self._tokens < 1 - 1e-9:
            await self._sleep((1 - self._tokens) / self.rate)
            self._refill()
        self._tokens -= 1


class Window:
    """At most ``size`` holders at once, first come first served; ``resize``
    takes effect at once (a smaller window lets holders finish and admits no
    one until below it)."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("a window holds at least one")
        self._size = size
        self._used = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    @property
    def size(self) -> int:
        return self._size

    @property
    def used(self) -> int:
        return self._used

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def resize(self, size: int) -> None:
        self._size = max(1, size)
        self._wake()

    async def acquire(self) -> None:
        if self._used < self._size and not self._waiters:
            self._used += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # the place was handed over as the caller left
            raise

    def release(self) -> None:
        self._used -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._used < self._size:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._used += 1
                waiter.set_result(None)
