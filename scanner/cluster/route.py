"""A cluster task's handshake stage: each session asked of the worker that
owns its address (scanner.cluster.owners), which alone connects to it; and
likewise each request of an MTA-STS policy fetch (``fetch_attempt``, the
task's Fetcher's ``Requester``), so that HTTPS politeness holds for the
cluster too.

The route stands where a single-machine pipeline has its Handshaker
(scanner.handshake.handshaker.Handshakes). It screens an address against
the contact policy first (a refused address costs no request), keeps the
sessions it has received in a bounded single-flight cache (a provider's
address serves many domains of a task; the owner's Handshaker would answer
from its own cache, but the request would still cross the network), and
sends the rest to the owner over Dask's connections, through the worker's
event loop (the task's loop is another thread's).

An owner that cannot be reached (its worker died or left) is a fact about
the cluster, not about the mail server: the route asks the scheduler for
the workers again and sends the request to the address's new owner. When
no owner answers after ``ATTEMPTS`` tries, it raises ``OwnerLost``, which
fails the task; the driver runs it again, and the rerun goes on from the
task's last part.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from scanner.cache import SingleFlightLru
from scanner.cluster import owners
from scanner.cluster.service import ScanService
from scanner.handshake.handshaker import screen
from scanner.handshake.session import SessionResult
from scanner.lost import ScanLost
from scanner.mtasts.fetch import Attempt
from scanner.names import key as name_key
from scanner.status import SmtpStatus

ATTEMPTS = 6
_PAUSE = 1.0  # seconds before the first new try, doubled after each
T = TypeVar("T")


class OwnerLost(ScanLost):
    """No worker answered for an address, or this worker is closing: the
    domain is not written, the task fails and is run again."""


@dataclass(frozen=True, slots=True)
class RouteStats:
    """Counters of one task's route."""

    local: int = 0  # sessions asked of this worker's own Handshaker
    remote: int = 0  # ... of another worker's
    cache_hits: int = 0
    joined: int = 0
    blocked: int = 0  # refused by the contact policy, before any request
    rerouted: int = 0  # requests sent again after an owner did not answer
    policy_local: int = 0  # MTA-STS policy requests made by this worker's Fetcher
    policy_remote: int = 0  # ... by another worker's


class Route:
    """One task's way to the owners of its addresses (see the module docstring)."""

    def __init__(
        self, service: ScanService, workers: Iterable[str], *, cache_size: int, port: int
    ) -> None:
        self._service = service
        self._workers = tuple(workers)
        self._port = port
        self._sessions: SingleFlightLru[tuple[str, str], SessionResult] = SingleFlightLru(
            cache_size
        )
        self._counts = dict.fromkeys(
            ("local", "remote", "blocked", "rerouted", "policy_local", "policy_remote"), 0
        )
        self._in_flight = 0

    @contextlib.asynccontextmanager
    async def stage(self) -> AsyncIterator[Route]:
        """The route as the pipeline's handshake stage."""
        try:
            yield self
        finally:
            await self.aclose()

    @property
    def open_connections(self) -> int:
        """Requests waiting for an owner (the owners hold the connections)."""
        return self._in_flight

    @property
    def stats(self) -> RouteStats:
        return RouteStats(
            cache_hits=self._sessions.hits, joined=self._sessions.joined, **self._counts
        )

    async def handshake(self, address: str, sni: str, names: Iterable[str] = ()) -> SessionResult:
        names = tuple(names)
        ip, refused = screen(self._service.policy, address, sni, names, self._port)
        if refused is not None:
            self._counts["blocked"] += refused.status is not SmtpStatus.SKIPPED
            return refused
        return await self._sessions.get((ip, name_key(sni)), lambda: self._ask(ip, sni, names))

    async def aclose(self) -> None:
        await self._sessions.aclose()

    async def fetch_attempt(self, host: str, address: str) -> Attempt:
        """One request of ``host``'s MTA-STS policy to ``address`` (which the
        task's Fetcher has screened), made by the address's owner."""
        return await self._routed(
            address,
            lambda owner: self._service.ask_owner_fetch(owner, host, address),
            kind="policy_",
        )

    async def _ask(self, address: str, sni: str, names: tuple[str, ...]) -> SessionResult:
        return await self._routed(
            address, lambda owner: self._service.ask_owner(owner, address, sni, names)
        )

    async def _routed(
        self,
        address: str,
        ask: Callable[[str], Coroutine[Any, Any, T]],
        *,
        kind: str = "",
    ) -> T:
        """``ask(owner)`` of the owner of ``address``, and of its next owner
        while the one asked does not answer."""
        pause = _PAUSE
        for _ in range(ATTEMPTS):
            owner = owners.owner(address, self._workers)
            where = "local" if owner == self._service.worker.address else "remote"
            self._counts[kind + where] += 1
            try:
                return await self._on_worker(ask(owner))
            except Exception as exc:
                if self._service.closing:  # its loop and connections are going
                    raise OwnerLost(f"this worker is closing: {exc}") from None
                if not isinstance(exc, OSError):  # distributed's CommClosedError is one
                    raise
                self._counts["rerouted"] += 1
                await asyncio.sleep(pause)
                pause *= 2
                with contextlib.suppress(OSError):
                    self._workers = await self._on_worker(self._current_workers())
        raise OwnerLost(f"no worker answered for {address} after {ATTEMPTS} tries")

    async def _on_worker(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the worker's event loop, awaited from the task's."""
        self._in_flight += 1
        try:
            future = asyncio.run_coroutine_threadsafe(coroutine, self._service.loop)
            return await asyncio.wrap_future(future)
        finally:
            self._in_flight -= 1

    async def _current_workers(self) -> tuple[str, ...]:
        """The owners still there: the route's own minus those that left
        (so that every task's view only shrinks, and all agree on the
        owners that remain); all the scheduler's when none remains."""
        identity = await self._service.worker.scheduler.identity()
        current = set(identity.get("workers", {}))
        if not current:
            raise OSError("the scheduler has no workers")
        return tuple(sorted(current.intersection(self._workers) or current))
