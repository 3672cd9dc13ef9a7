"""Politeness towards the mail servers a scan touches.

Wraps ``run_session`` so that, across a whole scan:

- no address on the exclusion list is ever contacted: it is recorded as
  ``blocked`` before any packet is sent;
- each (address, SNI name) pair is handshaken once (RFC 7672 section 8.1
  makes the TLSA base domain the SNI, so the pair, not the address alone,
  identifies what the server shows): concurrent requests share one session,
  finished results stay in a bounded LRU;
- at most ``per_address`` connections to one address are open at a time,
  connection starts to one address are ``min_interval`` apart, and at most
  ``max_connections`` are open in all;
- a transient refusal (a 4xx reply, RFC 5321 section 4.2.1, to the greeting,
  EHLO or STARTTLS; typically 421 "too many connections" or greylisting) is
  retried once after a backoff.

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

from scanner.cache import SingleFlightLru
from scanner.handshake.exclude import Exclusions
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
    retry_backoff: float = 10.0

    def __post_init__(self) -> None:
        if self.per_address < 1 or self.max_connections < 1 or self.cache_size < 1:
            raise ValueError("per_address, max_connections and cache_size must be at least 1")
        if self.min_interval < 0 or self.retry_backoff < 0:
            raise ValueError("min_interval and retry_backoff must not be negative")


@dataclass(frozen=True, slots=True)
class PoliteStats:
    """Counters since the handshaker was made."""

    sessions: int = 0  # connection attempts started, retries included
    retries: int = 0
    cache_hits: int = 0  # answered from a finished session
    joined: int = 0  # answered by a session already in flight
    blocked: int = 0


def should_retry(result: SessionResult) -> bool:
    """Whether the session ended on a transient (4xx) refusal worth one more try."""
    transcript = result.transcript
    replies: tuple[Reply | None, ...]
    if result.status is SmtpStatus.BANNER_ERROR:
        # The refusal is the last greeting reply there is: banner, then EHLO, then HELO.
        replies = (transcript.helo, transcript.ehlo, transcript.banner)
    elif result.status is SmtpStatus.STARTTLS_REFUSED:
        replies = (transcript.starttls,)
    else:
        return False
    last = next((reply for reply in replies if reply is not None), None)
    return last is not None and last.severity == 4


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
        "_exclusions",
        "_gates",
        "_global",
        "_next_start",
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
        exclusions: Exclusions | None = None,
        session: Session = run_session,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._polite = polite
        self._context = context
        self._exclusions = exclusions if exclusions is not None else Exclusions()
        self._session = session
        self._clock = clock
        self._sleep = sleep
        self._global = asyncio.Semaphore(polite.max_connections)
        self._gates: dict[str, _Gate] = {}
        # When the next connection to an address may start at the earliest.
        # Bounded like the results: an entry evicted after that many newer
        # connection starts is long past its interval.
        self._next_start: OrderedDict[str, float] = OrderedDict()
        self._sessions: SingleFlightLru[tuple[str, str], SessionResult] = SingleFlightLru(
            polite.cache_size
        )
        self._stats: dict[str, int] = dict.fromkeys(("sessions", "retries", "blocked"), 0)

    @property
    def stats(self) -> PoliteStats:
        return PoliteStats(
            cache_hits=self._sessions.hits, joined=self._sessions.joined, **self._stats
        )

    async def handshake(self, address: str, sni: str, names: Iterable[str] = ()) -> SessionResult:
        """The handshake with ``address`` presenting ``sni``: done once per scan.

        ``names`` are further names the address stands for (MX host, mail
        domain), checked against the exclusion list along with ``sni``.
        """
        port = self._settings.port
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return unattempted(address, sni, port, SmtpStatus.SKIPPED, "not an IP address")
        if self._exclusions.is_excluded(ip, (sni, *names)):
            self._count("blocked")
            return unattempted(str(ip), sni, port, SmtpStatus.BLOCKED, "on the exclusion list")
        key = (str(ip), sni.lower().rstrip("."))
        return await self._sessions.get(key, lambda: self._with_retry(key[0], sni))

    async def aclose(self) -> None:
        """Cancel the sessions still in flight (at the end of a scan)."""
        await self._sessions.aclose()

    async def _with_retry(self, address: str, sni: str) -> SessionResult:
        result = await self._attempt(address, sni)
        if not should_retry(result):
            return result
        self._count("retries")
        await self._sleep(self._polite.retry_backoff)
        return replace(await self._attempt(address, sni), attempts=2)

    async def _attempt(self, address: str, sni: str) -> SessionResult:
        # The address slot comes first: waiting for a busy address must not hold
        # one of the global slots. The pause between starts does hold one, but
        # at most per_address of them per address.
        async with self._address_slot(address), self._global:
            await self._pace(address)
            self._count("sessions")
            return await self._session(address, sni, self._settings, self._context)

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
        self._next_start[address] = start + self._polite.min_interval
        self._next_start.move_to_end(address)
        if len(self._next_start) > self._polite.cache_size:
            self._next_start.popitem(last=False)
        if start > now:
            await self._sleep(start - now)

    def _count(self, counter: str) -> None:
        self._stats[counter] += 1
