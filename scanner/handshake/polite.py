"""Politeness towards the mail servers a scan touches, and its retries.

Wraps ``run_session`` so that, across a whole scan:

- no address the scan's contact policy refuses (scanner.handshake.contact:
  the exclusion list, special-purpose addresses) is ever contacted, first
  try or retry: it is recorded as ``blocked`` or ``reserved`` before any
  packet is sent;
- each (address, SNI name) pair is handshaken once (RFC 7672 section 8.1
  makes the TLSA base domain the SNI, so the pair, not the address alone,
  identifies what the server shows): concurrent requests share one session,
  finished results stay in a bounded LRU;
- at most ``per_address`` connections to one address are open at a time,
  connection starts to one address are at least its interval apart
  (``min_interval``, longer for an address that said it had too many), and
  at most ``max_connections`` are open in all; a request waits for its
  address without holding a connection slot;
- a transient outcome is tried again, up to ``attempts`` in all (``retry_plan``):
  a 4xx reply (RFC 5321 section 4.2.1) to the greeting or EHLO, which is how
  greylisting and connection limits answer, backs the whole address off:
  a 421 (section 3.8) doubles its interval, a greylisting reply waits out the
  window it names ("try again in 300 seconds") or postgrey's default; a 454
  to STARTTLS (RFC 3207 section 4) and a reset or an alert in the TLS
  handshake are tried again after a growing pause.

Time is passed in (``clock``, ``sleep``) so the pacing can be tested exactly.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, replace

from scanner.cache import SingleFlightLru
from scanner.handshake.contact import ContactPolicy
from scanner.handshake.session import SessionResult, SessionSettings, run_session, unattempted
from scanner.handshake.smtp import Reply
from scanner.status import SmtpStatus

Session = Callable[[str, str, SessionSettings, ssl.SSLContext], Awaitable[SessionResult]]


@dataclass(frozen=True, slots=True)
class PoliteSettings:
    """Limits on how the scan treats each server. Times in seconds."""

    per_address: int = 1
    min_interval: float = 1.0
    max_connections: int = 1000
    cache_size: int = 100_000
    # Sessions per (address, SNI name) at most, the first one included.
    attempts: int = 3
    # The pause before trying again after a timeout, a reset or a 454; it
    # triples with each attempt.
    retry_backoff: float = 10.0
    # A greylisting reply that names no window: postgrey's default delay.
    greylist_wait: float = 300.0
    # No pause is longer than this, whatever a server asks (spamd's 25 min pass).
    max_wait: float = 1800.0
    # An address that answered 421 gets twice its interval, up to this.
    max_interval: float = 60.0

    def __post_init__(self) -> None:
        if self.per_address < 1 or self.max_connections < 1 or self.cache_size < 1:
            raise ValueError("per_address, max_connections and cache_size must be at least 1")
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        waits = (self.min_interval, self.retry_backoff, self.greylist_wait, self.max_wait)
        if min(waits) < 0 or self.max_interval < self.min_interval:
            raise ValueError("waits must not be negative, max_interval not below min_interval")


@dataclass(frozen=True, slots=True)
class PoliteStats:
    """Counters since the handshaker was made."""

    sessions: int = 0  # connection attempts started, retries included
    retries: int = 0
    cache_hits: int = 0  # answered from a finished session
    joined: int = 0  # answered by a session already in flight
    blocked: int = 0  # refused by the contact policy (blocked or reserved)


@dataclass(frozen=True, slots=True)
class Retry:
    """When to try a (address, SNI name) pair again, and what the address owes."""

    wait: float  # seconds from now
    whole_address: bool  # every request to the address waits (a 4xx to the greeting)
    slow_down: bool  # the address said it had too many connections (421)


# "try again in 300 seconds", "retry in 5 minutes", "Greylisted for 60s".
_WINDOW = re.compile(r"(\d{1,6})\s*(s|secs?|seconds?|m|mins?|minutes?)\b", re.IGNORECASE)


def greylist_window(text: str) -> float | None:
    """The wait a greylisting reply names, in seconds, if it names one."""
    found = _WINDOW.search(text)
    if found is None:
        return None
    value = float(found.group(1))
    return value * 60 if found.group(2).lower().startswith("m") else value


def _refusal(result: SessionResult) -> Reply | None:
    """The transient (4xx) reply that ended the session, if one did."""
    transcript = result.transcript
    replies: tuple[Reply | None, ...]
    if result.status is SmtpStatus.BANNER_ERROR:
        # The refusal is the last greeting reply there is: banner, then EHLO, then HELO.
        replies = (transcript.helo, transcript.ehlo, transcript.banner)
    elif result.status is SmtpStatus.STARTTLS_REFUSED:
        replies = (transcript.starttls,)
    else:
        return None
    last = next((reply for reply in replies if reply is not None), None)
    return last if last is not None and last.severity == 4 else None


# A reset or an alert in the TLS handshake may not happen again; a server
# that let a whole session deadline pass mostly would, and waiting for it
# again costs another deadline: timeouts are not tried again.
_TRANSIENT = (SmtpStatus.TLS_ERROR,)


def is_transient(result: SessionResult) -> bool:
    """Whether the session ended in a way that may differ if tried again
    later (what ``retry_plan`` retries): a 4xx reply, a reset or an alert in
    the TLS handshake. A result that still is after its last attempt is
    recorded as transient, not as a fact about the server."""
    return result.status in _TRANSIENT or _refusal(result) is not None


def backoff(base: float, attempt: int, ceiling: float) -> float:
    """The pause after attempt number ``attempt``: ``base``, tripled at each
    attempt, at most ``ceiling``; the scan's one rule for trying again."""
    return min(ceiling, base * 3.0 ** (attempt - 1))


def retry_plan(result: SessionResult, attempt: int, polite: PoliteSettings) -> Retry | None:
    """Whether and when the session that ended as ``result`` (attempt number
    ``attempt``) is tried again; None when its outcome stands."""
    if attempt >= polite.attempts:
        return None
    growing = backoff(polite.retry_backoff, attempt, polite.max_wait)
    refusal = _refusal(result)
    if refusal is None:
        return Retry(growing, False, False) if result.status in _TRANSIENT else None
    if refusal.code == 421:
        return Retry(growing, True, True)
    if result.status is SmtpStatus.STARTTLS_REFUSED:
        return Retry(growing, False, False)
    # A 4xx to the greeting or EHLO other than 421: greylisting, per client.
    named = greylist_window(refusal.text)
    wait = named + 1.0 if named is not None else polite.greylist_wait * 5 ** (attempt - 1)
    return Retry(min(polite.max_wait, wait), True, False)


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
        "_next_start",
        "_open",
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
        # When the next connection to an address may start at the earliest.
        # Bounded like the results: an entry evicted after that many newer
        # connection starts is long past its interval.
        self._next_start: OrderedDict[str, float] = OrderedDict()
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
    def stats(self) -> PoliteStats:
        return PoliteStats(
            cache_hits=self._sessions.hits, joined=self._sessions.joined, **self._stats
        )

    async def handshake(self, address: str, sni: str, names: Iterable[str] = ()) -> SessionResult:
        """The handshake with ``address`` presenting ``sni``: done once per scan.

        ``names`` are further names the address stands for (MX host, mail
        domain), checked against the contact policy along with ``sni``.
        """
        port = self._settings.port
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return unattempted(address, sni, port, SmtpStatus.SKIPPED, "not an IP address")
        refusal = self._policy.refusal(ip, (sni, *names))
        if refusal is not None:
            self._count("blocked")
            return unattempted(str(ip), sni, port, refusal.status, refusal.reason)
        key = (str(ip), sni.lower().rstrip("."))
        return await self._sessions.get(key, lambda: self._with_retry(key[0], sni))

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
            await self._pace(address)
            async with self._global:
                self._count("sessions")
                self._open += 1
                try:
                    result = await self._session(address, sni, self._settings, self._context)
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

    async def _pace(self, address: str) -> None:
        # The slot is reserved before sleeping, so that with per_address > 1
        # two connections never both claim the same start time.
        now = self._clock()
        start = max(now, self._next_start.get(address, now))
        self._remember(self._next_start, address, start + self._interval(address))
        if start > now:
            await self._sleep(start - now)

    def _hold(self, address: str, plan: Retry) -> None:
        """No connection to ``address`` starts before ``plan.wait`` from now."""
        until = self._clock() + plan.wait
        self._remember(self._next_start, address, max(until, self._next_start.get(address, 0.0)))

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
