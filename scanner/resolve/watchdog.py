"""The resolver's watchdog: the thin asyncio driver of scanner.resolve.health.

Every tick it reads what the scan's DNS client saw (``DnsClient.take_health``),
and when the health machine asks, it probes the resolver with the scan's
secure probe name over a client of its own, with short timeouts: a probe
must decide within seconds, not wait out a slow zone. The pipeline waits on
it: admission and lookups to be redone wait for ``up``; a lookup that failed
waits for ``judged`` before deciding whether the failure was the domain's
or the resolver's.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable

from scanner.resolve.client import DnsClient, ResolverSettings
from scanner.resolve.health import Health, HealthSettings, ResolverHealth, ResolverLost
from scanner.resolve.message import RdType
from scanner.status import DnsOutcome

# A probe's own timing: one attempt, given up after a second. The probe
# name is in any working resolver's cache, answered in milliseconds; a probe
# lost by chance costs a pause in admission until the next one, a second later.
_PROBE_TIMEOUT = 1.0
_PROBE_RETRIES = 0


class Watchdog:
    """Watches one DnsClient's resolvers; run ``watch()`` as a task."""

    def __init__(
        self,
        client: DnsClient,
        servers: tuple[str, ...],
        probe_name: str,
        settings: HealthSettings,
        need_ad: bool = True,
        *,
        tick: float = 0.5,
        on_recovered: Callable[[], object] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._servers = servers
        self._probe_name = probe_name
        self._need_ad = need_ad
        self._tick = tick
        self._on_recovered = on_recovered
        self._clock = clock
        self.health = ResolverHealth(settings, clock())
        self._up = asyncio.Event()
        self._up.set()
        self._judgement = asyncio.Event()  # set, and replaced, at each judgement
        self.lost: ResolverLost | None = None
        self._closing = asyncio.Event()

    @property
    def state(self) -> Health:
        return self.health.state

    async def up(self) -> None:
        """Until the resolver is not known to be down."""
        if not self._up.is_set():
            await self._up.wait()
        if self.lost is not None:
            raise self.lost

    async def judged(self, when: float) -> None:
        """Until everything the client saw until ``when`` has been judged."""
        while self.health.evaluated < when:
            await self._judgement.wait()

    def overlaps(self, start: float, end: float) -> bool:
        return self.health.overlaps(start, end)

    async def watch(self) -> None:
        settings = ResolverSettings(
            servers=self._servers, timeout=_PROBE_TIMEOUT, retries=_PROBE_RETRIES
        )
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._tick)
            if self._closing.is_set():
                return
            answered, failed = self._client.take_health()
            now = self._clock()
            was = self.health.state
            if self.health.tick(answered, failed, now):
                working = await self._probe(settings)
                self.health.probed(working, self._clock())
            now = self._clock()
            if self.health.lost(now) and self.lost is None:
                outage = self.health.current
                began = outage.began if outage is not None else now
                self.lost = ResolverLost(
                    f"resolver lost: {', '.join(self._servers)} did not answer for "
                    f"{now - began:.0f} s"
                )
            self._publish(was)
            if self.lost is not None:
                self._up.set()  # what waits for the resolver learns it is lost

    def close(self) -> None:
        """End ``watch`` at its next tick (or probe's end): the scan is over.
        Ending it so, rather than cancelling it, never interrupts a probe's
        client while it opens or closes its sockets."""
        self._closing.set()

    async def _probe(self, settings: ResolverSettings) -> bool:
        # A client per probe: probes are rare, and no sockets stay open between.
        async with DnsClient(settings) as prober:
            answer = await prober.query(self._probe_name, RdType.SOA)
        answered = answer.outcome in (DnsOutcome.ANSWER, DnsOutcome.NODATA)
        return answered and (answer.ad or not self._need_ad)

    def _publish(self, was: Health) -> None:
        if self.health.state is Health.DOWN:
            self._up.clear()
        else:
            if was is Health.DOWN:
                self._on_recovered()
            self._up.set()
        judgement, self._judgement = self._judgement, asyncio.Event()
        judgement.set()
