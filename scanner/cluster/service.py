"""The scan's presence on each Dask worker: the Handshaker and the policy
Fetcher of the addresses the worker owns, and the tasks it is running.

A ``WorkerPlugin`` registered by the driver for the length of one scan (and
on every worker that joins during it). On the worker's event loop it keeps
one Handshaker (scanner.handshake.handshaker) and one Fetcher of MTA-STS
policies (scanner.mtasts.fetch) with the scan's session and politeness
settings and contact policy, and answers the route's requests
(scanner.cluster.route) for the addresses this worker owns. Tasks run in
the worker's task threads, each on an event loop of its own; the service
knows them so that the driver can stop them (an interrupted scan) and the
route can reach the worker's loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from distributed import WorkerPlugin
from distributed.core import ConnectionPool

from scanner.config import ScanConfig
from scanner.handshake.contact import ContactPolicy
from scanner.handshake.handshaker import Handshaker
from scanner.handshake.session import SessionResult, client_context
from scanner.mtasts.fetch import Attempt, Fetcher, fetcher_for

if TYPE_CHECKING:
    from distributed import Worker

    from scanner.pipeline import Pipeline

PLUGIN = "danescan"
HANDSHAKE = "danescan_handshake"  # the worker handlers the route calls
FETCH = "danescan_fetch"
PROGRESS = "danescan-progress"  # the event topic tasks report progress on
# Seconds to connect to an owner: Dask's own default waits half a minute for
# a worker that died, and every domain behind its addresses would wait too.
OWNER_CONNECT_TIMEOUT = 3.0
T = TypeVar("T")


class ScanService(WorkerPlugin):
    """One scan's state on one worker (see the module docstring)."""

    name = PLUGIN

    def __init__(self, config: ScanConfig, policy: ContactPolicy) -> None:
        self.config = config
        self.policy = policy
        self._worker: Worker | None = None
        self._handshaker: Handshaker | None = None
        self._fetcher: Fetcher | None = None
        self._owners: ConnectionPool | None = None
        self._torn_down = False
        self._tasks: dict[int, tuple[asyncio.AbstractEventLoop, Pipeline]] = {}
        self._lock = threading.Lock()

    def __reduce__(self) -> tuple[Any, ...]:
        # What travels to the workers: the settings, never a worker's state.
        return (ScanService, (self.config, self.policy))

    # -- the plugin's life --------------------------------------------------------

    async def setup(self, worker: Worker) -> None:
        self._worker = worker
        self._owners = ConnectionPool(
            connection_args=worker.connection_args, timeout=OWNER_CONNECT_TIMEOUT, server=worker
        )
        await self._owners.start()
        worker.handlers[HANDSHAKE] = self.serve
        worker.handlers[FETCH] = self.serve_fetch

    async def teardown(self, worker: Worker) -> None:
        self._torn_down = True
        worker.handlers.pop(HANDSHAKE, None)
        worker.handlers.pop(FETCH, None)
        self.stop_tasks()
        if self._handshaker is not None:
            await self._handshaker.aclose()
        if self._owners is not None:
            await self._owners.close()

    @property
    def closing(self) -> bool:
        """The scan ended here or the worker is going: torn down, or the
        worker or its pool of owner connections no longer running (a worker
        that lost its scheduler closes its connections before its plugins)."""
        running = ("running", "paused")
        return (
            self._torn_down
            or self._worker is None
            or self._worker.status.name not in running
            or (self._owners is not None and self._owners.status.name != "running")
        )

    @property
    def worker(self) -> Worker:
        if self._worker is None:
            raise RuntimeError("the scan service is not set up on a worker")
        return self._worker

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The worker's own event loop, where the Handshaker lives."""
        loop: asyncio.AbstractEventLoop = self.worker.loop.asyncio_loop  # type: ignore[attr-defined]
        return loop

    # -- the addresses this worker owns ---------------------------------------------

    def handshaker(self) -> Handshaker:
        """The Handshaker of this worker's addresses, made on first use (on the worker's loop)."""
        if self._handshaker is None:
            config = self.config
            self._handshaker = Handshaker(
                config.session_settings,
                config.polite_settings,
                client_context(),
                policy=self.policy,
            )
        return self._handshaker

    def fetcher(self) -> Fetcher:
        """The MTA-STS Fetcher of this worker's addresses, made on first use."""
        if self._fetcher is None:
            self._fetcher = fetcher_for(self.config, self.policy)
        return self._fetcher

    async def ask_owner(
        self, owner: str, address: str, sni: str, names: Iterable[str]
    ) -> SessionResult:
        """The session with ``address``, asked of the worker ``owner`` (on this worker's loop)."""
        if owner == self.worker.address:
            return await self.handshake(address, sni, names)
        answer = await self._call(owner, HANDSHAKE, address=address, sni=sni, names=list(names))
        return _expect(SessionResult, answer, owner)

    async def ask_owner_fetch(self, owner: str, host: str, address: str) -> Attempt:
        """One policy request for ``host`` to ``address``, made by the worker ``owner``."""
        if owner == self.worker.address:
            return await self.fetcher().attempt(host, address)
        return _expect(Attempt, await self._call(owner, FETCH, host=host, address=address), owner)

    async def _call(self, owner: str, handler: str, **arguments: Any) -> Any:
        assert self._owners is not None
        return await getattr(self._owners(owner), handler)(**arguments)

    async def handshake(self, address: str, sni: str, names: Iterable[str]) -> SessionResult:
        return await self.handshaker().handshake(address, sni, names)

    # The route's requests from other workers, answered pickled (Dask's
    # messages carry bytes; both ends are the survey's own).

    async def serve(self, address: str, sni: str, names: list[str]) -> bytes:
        return pickle.dumps(await self.handshake(address, sni, names))

    async def serve_fetch(self, host: str, address: str) -> bytes:
        return pickle.dumps(await self.fetcher().attempt(host, address))

    def handshake_counts(self) -> dict[str, int]:
        if self._handshaker is None:
            return {}
        return dataclasses.asdict(self._handshaker.stats)

    # -- the tasks this worker runs -------------------------------------------------

    def started(self, task: int, loop: asyncio.AbstractEventLoop, pipeline: Pipeline) -> None:
        with self._lock:
            self._tasks[task] = (loop, pipeline)

    def finished(self, task: int) -> None:
        with self._lock:
            self._tasks.pop(task, None)

    def stop_tasks(self) -> int:
        """Ask every running task to admit no more domains (thread-safe)."""
        with self._lock:
            running = list(self._tasks.values())
        for loop, pipeline in running:
            loop.call_soon_threadsafe(pipeline.stop)
        return len(running)


def _expect(kind: type[T], answer: bytes, owner: str) -> T:
    result = pickle.loads(answer)
    if not isinstance(result, kind):
        got = type(result).__name__
        raise TypeError(f"worker {owner} answered with {got}, not {kind.__name__}")
    return result
