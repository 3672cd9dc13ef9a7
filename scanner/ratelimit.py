"""A token bucket admitting work at a steady rate with a bounded burst.

Time comes in through ``clock`` and ``sleep`` so tests can drive it exactly.
"""

from __future__ import annotations

import asyncio
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
