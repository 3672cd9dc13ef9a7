"""The handshake stage's entry point: every handshake of a scan goes through
one ``Handshaker``, which applies the rules of scanner.handshake.polite
around ``run_session`` so that, across a whole scan:

- no address the scan's contact policy refuses (scanner.handshake.contact:
  the exclusion list, special-purpose addresses) is ever contacted, first
  try or retry: it is recorded as ``blocked`` or ``reserved`` before any
  packet is sent;
- each (address, SNI name) pair is handshaken once (RFC 7672 section 8.1
  makes the TLSA base domain the SNI, so the pair, not the address alone,
  identifies what the server shows): concurrent requests share one session,
  finished results stay in a bounded LRU;
- the connections to one address, and in all, stay within the limits of
  ``PoliteSettings``, their starts paced from when each connect is sent
  (scanner.handshake.pacing); a request waits for its address without
  holding a connection slot;
- a transient outcome is tried again as ``retry_plan`` says.

Time is passed in (``clock``, ``sleep``) so the pacing can be tested exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

from scanner.cache import SingleFlightLru
from scanner.handshake.contact import ContactPolicy
from scanner.handshake.pacing import StartPacer
from scanner.handshake.polite import PoliteSettings, Retry, retry_plan
from scanner.handshake.session import SessionResult, SessionSettings, run_session, unattempted
from scanner.names import key as name_key
from scanner.status import SmtpStatus

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class Session(Protocol):
    """What runs one probe: run_session, or a test's stand-in."""

    def __call__(
        self,
        address: str,
        sni: str,
        settings: SessionSettings,
        context: ssl.SSLContext,
        *,
        connecting: Callable[[], None],
    ) -> Awaitable[SessionResult]: ...


def screen(
    policy: ContactPolicy, address: str, sni: str, names: Iterable[str], port: int
) -> tuple[str, SessionResult | None]:
    """``address`` in normal form, and the outcome that ends its handshake
    before any packet when it is no IP address or the contact policy refuses
    it (or its names); None when it may be contacted."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address, unattempted(address, sni, port, SmtpStatus.SKIPPED, "not an IP address")
    refusal = policy.refusal(ip, (sni, *names))
    if refusal is not None:
        return str(ip), unattempted(str(ip), sni, port, refusal.status, refusal.reason)
    return str(ip), None


class Handshakes(Protocol):
    """What the pipeline needs of the handshake stage: this process's
    :class:`Handshaker`, or on a cluster the route to the worker that owns
    each address (scanner.cluster.route)."""

    @property
    def open_connections(self) -> int: ...

    @property
    def stats(self) -> DataclassInstance: ...

    async def handshake(
        self, address: str, sni: str, names: Iterable[str] = ()
    ) -> SessionResult: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class HandshakerStats:
    """Counters since the handshaker was made."""

    sessions: int = 0  # connection attempts started, retries included
    retries: int = 0
    cache_hits: int = 0  # answered from a finished session
    joined: int = 0  # answered by a session already in flight
    blocked: int = 0  # refused by the contact policy (blocked or reserved)


class _Gate:
    """The open connections to one address, and who waits for one."""

    __slots__ = ("semaphore", "users")

    def __init__(self, size: int) -> None:
        self.semaphore = asyncio.Semaphore(size)
        self.users = 0


class Handshaker:
    """One per scan and event loop: every handshake of the scan goes through it."""

    __slots__ = (
        "_clock",
        "_context",
        "_floors",
        "_gates",
        "_global",
        "_intervals",
        "_open",
        "_pacer",
        "_policy",
        "_polite",
        "_session",
        "_sessions",
        "_settings",
        "_sleep",
        "_stats",
    )

    def __init__(
        self,
        settings: SessionSettings,
        polite: PoliteSettings,
        context: ssl.SSLContext,
        *,
        policy: ContactPolicy | None = None,
        session: Session = run_session,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._polite = polite
        self._context = context
        # The default contacts no special-purpose address: a caller that
        # means to reach one (a test on loopback) says so.
        self._policy = policy if policy is not None else ContactPolicy()
        self._session = session
        self._clock = clock
        self._sleep = sleep
        self._global = asyncio.Semaphore(polite.max_connections)
        self._gates: dict[str, _Gate] = {}
        # Bounded like the results.
        self._pacer = StartPacer(polite.cache_size, clock, sleep)
        # Addresses that said they had too many connections: their interval,
        # and the shortest one they may get again.
        self._intervals: OrderedDict[str, float] = OrderedDict()
        self._floors: OrderedDict[str, float] = OrderedDict()
        self._open = 0
        self._sessions: SingleFlightLru[tuple[str, str], SessionResult] = SingleFlightLru(
            polite.cache_size
        )
        self._stats: dict[str, int] = dict.fromkeys(("sessions", "retries", "blocked"), 0)

    @property
    def open_connections(self) -> int:
        return self._open

    @property
    def stats(self) -> HandshakerStats:
        return HandshakerStats(
            cache_hits=self._sessions.hits, joined=self._sessions.joined, **self._stats
        )

    async def handshake(self, address: str, sni: str, names: Iterable[str] = ()) -> SessionResult:
        """The handshake with ``address`` presenting ``sni``: done once per scan.

        ``names`` are further names the address stands for (MX host, mail
        domain), checked against the contact policy along with ``sni``.
        """
        ip, refused = screen(self._policy, address, sni, names, self._settings.port)
        if refused is not None:
            if refused.status is not SmtpStatus.SKIPPED:
                self._count("blocked")
            return refused
        key = (ip, name_key(sni))
        return await self._sessions.get(key, lambda: self._with_retry(ip, sni))

    async def aclose(self) -> None:
        """Cancel the sessions still in flight (at the end of a scan)."""
        await self._sessions.aclose()

    async def _with_retry(self, address: str, sni: str) -> SessionResult:
        attempt = 1
        while True:
            result = await self._attempt(address, sni)
            plan = retry_plan(result, attempt, self._polite)
            if plan is None:
                return replace(result, attempts=attempt) if attempt > 1 else result
            self._count("retries")
            if plan.whole_address:
                self._hold(address, plan)
                if plan.slow_down:
                    self._slow_down(address)
            else:
                await self._sleep(plan.wait)
            attempt += 1

    async def _attempt(self, address: str, sni: str) -> SessionResult:
        # Waiting for the address (its other connections, its interval, a
        # back-off) holds its own slot only; a connection slot is taken when
        # the session is due to start.
        async with self._address_slot(address):
            await self._pacer.turn(address, self._interval(address))
            async with self._global:
                await self._pacer.due(address, self._interval(address))
                self._count("sessions")
                self._open += 1
                try:
                    result = await self._session(
                        address,
                        sni,
                        self._settings,
                        self._context,
                        connecting=lambda: self._pacer.began(address, self._interval(address)),
                    )
                finally:
                    self._open -= 1
        if result.status is SmtpStatus.TLS_OK:
            self._recover(address)
        return result

    @contextlib.asynccontextmanager
    async def _address_slot(self, address: str) -> AsyncIterator[None]:
        gate = self._gates.get(address)
        if gate is None:
            gate = self._gates[address] = _Gate(self._polite.per_address)
        gate.users += 1
        try:
            async with gate.semaphore:
                yield
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._gates[address]

    def _hold(self, address: str, plan: Retry) -> None:
        """No connection to ``address`` starts before ``plan.wait`` from now."""
        self._pacer.hold(address, self._clock() + plan.wait)

    def _interval(self, address: str) -> float:
        return self._intervals.get(address, self._polite.min_interval)

    def _slow_down(self, address: str) -> None:
        """The address said it had too many connections from us: twice the
        interval for now, and never again as short as the one it refused
        (a quarter longer: a server that allows M a minute is met within a
        few refusals, as the floor climbs past 60/M)."""
        polite = self._polite
        interval = max(self._interval(address), polite.min_interval, 0.5)
        floor = min(polite.max_interval, max(self._floors.get(address, 0.0), interval * 1.25))
        self._remember(self._floors, address, floor)
        self._remember(self._intervals, address, min(polite.max_interval, 2 * interval))

    def _recover(self, address: str) -> None:
        """A session went through: a slowed-down address speeds up again, down
        to its floor."""
        interval = self._intervals.get(address)
        if interval is not None:
            floor = max(self._floors.get(address, 0.0), self._polite.min_interval)
            faster = interval * 0.9
            if faster <= self._polite.min_interval:
                del self._intervals[address]
            else:
                self._intervals[address] = max(floor, faster)

    def _remember(self, table: OrderedDict[str, float], address: str, value: float) -> None:
        # Bounded like the results: an entry evicted after that many newer
        # ones is long past mattering.
        table[address] = value
        table.move_to_end(address)
        if len(table) > self._polite.cache_size:
            table.popitem(last=False)

    def _count(self, counter: str) -> None:
        self._stats[counter] += 1
