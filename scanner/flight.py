"""The domains of one process between admission and matching: the window
of domains resolving, sized by the flow control (scanner.flow), and the cap
on domains parked while they wait for mail servers; and the gauges the
progress display shows of them."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field

from scanner.flow import Flow, FlowController, Limit
from scanner.handshake.handshaker import Handshakes
from scanner.progress import Gauges
from scanner.ratelimit import Window
from scanner.resolve.client import DnsClient

# Durations kept for the percentiles of the progress display.
_LATENCY_SAMPLES = 2048
# A process busy for this share of the time is what limits the rate.
_CPU_BOUND = 0.9


@dataclass(slots=True)
class Hold:
    """Which of the flight's windows one domain holds a place in."""

    window: bool = True
    parked: bool = False


@dataclass(slots=True)
class Flight:
    """The domains of one process between admission and matching."""

    window: Window  # resolving: sized by the flow control
    parked: Window  # waiting for mail servers: a fixed cap
    controller: FlowController
    active: int = 0
    ingesting: bool = True
    retrying: int = 0  # domains waiting to be looked up again
    resolve_times: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_SAMPLES))
    handshake_times: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_SAMPLES))
    _idle: asyncio.Event = field(default_factory=asyncio.Event)

    def resolved(self, seconds: float) -> None:
        self.controller.domain_done(seconds)
        self.resolve_times.append(seconds)

    def handshaken(self, seconds: float) -> None:
        self.handshake_times.append(seconds)

    async def park(self, hold: Hold) -> None:
        """Out of the window (the domain costs the resolver nothing while it
        waits), within the cap on waiting domains; a full cap holds
        admission back."""
        if not hold.parked:
            await self.parked.acquire()
            hold.parked = True
        self._leave_window(hold)

    async def unpark(self, hold: Hold) -> None:
        """Back into the window, to be looked up again."""
        if not hold.window:
            await self.window.acquire()
            hold.window = True
        self._leave_parked(hold)

    def leave(self, hold: Hold) -> None:
        self._leave_window(hold)
        self._leave_parked(hold)

    def _leave_window(self, hold: Hold) -> None:
        if hold.window:
            self.window.release()
            hold.window = False

    def _leave_parked(self, hold: Hold) -> None:
        if hold.parked:
            self.parked.release()
            hold.parked = False

    def done(self) -> None:
        self.active -= 1
        if not self.active and not self.ingesting:
            self._idle.set()

    async def idle(self) -> None:
        """Until every admitted domain is done (after the input has ended)."""
        if self.active:
            self._idle.clear()
            await self._idle.wait()

    def gauges(
        self, flow: Flow, client: DnsClient, handshaker: Handshakes, busy: float, down: bool
    ) -> Gauges:
        limit = flow.limit
        if down:
            limit = Limit.RESOLVER_DOWN
        elif self.parked.waiting or (limit is Limit.INPUT and self.parked.used):
            # Admission waits for room among the parked, or all that is
            # left is domains waiting for their mail servers.
            limit = Limit.POLITENESS
        elif limit is not Limit.INPUT and busy >= _CPU_BOUND:
            limit = Limit.CPU
        resolve = percentiles(self.resolve_times)
        handshake = percentiles(self.handshake_times)
        return Gauges(
            domains=self.window.used,
            domain_window=self.window.size,
            queries=client.in_flight + client.waiting,
            query_window=client.max_in_flight,
            parked=self.parked.used,
            connections=handshaker.open_connections,
            resolve_p50=resolve[0],
            resolve_p90=resolve[1],
            handshake_p50=handshake[0],
            handshake_p90=handshake[1],
            query_p50=flow.query_median,
            limit=limit.value,
            retrying=self.retrying,
        )


def percentiles(samples: deque[float]) -> tuple[float, float]:
    if not samples:
        return 0.0, 0.0
    ordered = sorted(samples)
    return ordered[len(ordered) // 2], ordered[len(ordered) * 9 // 10]
