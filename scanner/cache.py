"""A bounded LRU cache with single-flight: concurrent requests for one key
share one computation, so 100,000 domains behind one provider cost one TLSA
lookup and one handshake per address (DESIGN.md, "The pipeline")."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class SingleFlightLru(Generic[K, V]):
    """``await cache.get(key, compute)``: a finished value is reused; a value
    being computed is awaited by every caller; at most ``size`` finished
    values are kept. ``compute`` must not raise (outcomes are data); if it
    does, the error reaches every waiter and nothing is cached."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("cache size must be at least 1")
        self._size = size
        self._done: OrderedDict[K, V] = OrderedDict()
        self._running: dict[K, asyncio.Future[V]] = {}
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._done)

    async def get(self, key: K, compute: Callable[[], Awaitable[V]]) -> V:
        if key in self._done:
            self._done.move_to_end(key)
            self.hits += 1
            return self._done[key]
        running = self._running.get(key)
        if running is not None:
            self.hits += 1
            return await asyncio.shield(running)
        self.misses += 1
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            value = await compute()
        except asyncio.CancelledError:
            future.cancel()  # only at shutdown: the waiters are being cancelled too
            raise
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved here, so a lone caller leaves no warning
            raise
        else:
            future.set_result(value)
            self._done[key] = value
            if len(self._done) > self._size:
                self._done.popitem(last=False)
            return value
        finally:
            del self._running[key]
