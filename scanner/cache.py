"""A bounded LRU cache with single-flight: concurrent requests for one key
share one computation, so 100,000 domains behind one provider cost one TLSA
lookup and one handshake per address (DESIGN.md, "The pipeline")."""

from __future__ import annotations

import asyncio
import functools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlightLru(Generic[K, V]):
    """``await cache.get(key, compute)``: a finished value is reused; a value
    being computed is awaited by every caller; at most ``size`` finished
    values are kept. Values are never None (``peek`` returns None for a
    value not there).

    The computation runs in a task of its own, so a caller that gives up
    (is cancelled) never cancels the work others wait for. ``compute`` should
    not raise (outcomes are data); if it does, its callers see the error and
    nothing is cached.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("cache size must be at least 1")
        self._size = size
        self._done: OrderedDict[K, V] = OrderedDict()
        self._running: dict[K, asyncio.Future[V]] = {}
        self.hits = 0  # answered from a finished value
        self.joined = 0  # answered by a computation already under way
        self.misses = 0  # computations started

    def __len__(self) -> int:
        return len(self._done)

    @property
    def running(self) -> int:
        return len(self._running)

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        value = self.peek(key)
        if value is not None:
            return value
        return await asyncio.shield(self.start(key, compute))

    def peek(self, key: K) -> V | None:
        """The finished value (counted as a hit, made most recent), else None.

        For callers that want no coroutine on the hit path: ``peek`` first,
        then ``await asyncio.shield(cache.start(...))`` on a miss.
        """
        value = self._done.get(key)
        if value is not None:
            self._done.move_to_end(key)
            self.hits += 1
        return value

    def start(self, key: K, compute: Callable[[], Awaitable[V]]) -> asyncio.Future[V]:
        """The computation for ``key`` under way, started now if it is not.

        Await it through ``asyncio.shield``: cancelling a caller must not
        cancel what other callers wait for. The finished value is not looked
        at here (``peek`` or ``get`` do).
        """
        future = self._running.get(key)
        if future is None:
            self.misses += 1
            future = asyncio.ensure_future(compute())
            self._running[key] = future
            future.add_done_callback(functools.partial(self._settle, key))
        else:
            self.joined += 1
        return future

    def _settle(self, key: K, future: asyncio.Future[V]) -> None:
        self._running.pop(key, None)
        if future.cancelled() or future.exception() is not None:
            return  # exception() above also marks it retrieved: no stray warning
        self._done[key] = future.result()
        if len(self._done) > self._size:
            self._done.popitem(last=False)

    def forget(self, key: K) -> None:
        """Drop the finished value of ``key``: the next request computes it anew."""
        self._done.pop(key, None)

    def forget_where(self, stale: Callable[[V], bool]) -> int:
        """Drop every finished value ``stale`` says is; how many were."""
        keys = [key for key, value in self._done.items() if stale(value)]
        for key in keys:
            del self._done[key]
        return len(keys)

    async def aclose(self) -> None:
        """Cancel the computations still under way (at the end of a scan)."""
        futures = list(self._running.values())
        for future in futures:
            future.cancel()
        await asyncio.gather(*futures, return_exceptions=True)
